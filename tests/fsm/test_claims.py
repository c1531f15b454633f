"""Reconcilers' claims (:class:`fsm.store.Leases`), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest

from fsm import Engine, ManualClock, SqlStore
from fsm.errors import InvalidInstanceData
from fsm.flows import FLOWS
from fsm.store import Leases
from tests.fsm.conftest import T0

LEASE = timedelta(minutes=2)


@pytest.fixture
def leases(store: SqlStore) -> Leases:
    return Leases(store)


def due_payments(engine: Engine, count: int) -> list[str]:
    """``count`` payments whose first deadline (15 minutes) has passed at T0 + 1 hour."""
    return [
        engine.start("ewallet_payment", instance_id=f"pay-{n:03}", wallet="ovo", amount=1000).id
        for n in range(count)
    ]


LATER = T0 + timedelta(hours=1)


def run_together(stores: list[SqlStore], work: Callable[[int, SqlStore], None]) -> None:
    """Run ``work`` on a thread per store, wait for all (a minute at most), close the stores."""
    threads = [threading.Thread(target=work, args=(n, s)) for n, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for own_store in stores:
        own_store.dispose()


def test_a_claimed_instance_is_not_claimed_again_until_released(
    engine: Engine, leases: Leases
) -> None:
    ids = due_payments(engine, 3)
    first = leases.claim_due(LATER, owner="a", lease=LEASE)
    assert [instance.id for instance in first] == ids
    assert leases.claim_due(LATER, owner="b", lease=LEASE) == []
    leases.release(ids[:1], owner="a")
    assert [instance.id for instance in leases.claim_due(LATER, owner="b", lease=LEASE)] == ids[:1]


def test_release_leaves_another_owners_claim_alone(engine: Engine, leases: Leases) -> None:
    (pid,) = due_payments(engine, 1)
    assert leases.claim(pid, owner="a", now=LATER, lease=LEASE)
    leases.release([pid], owner="b")
    assert not leases.claim(pid, owner="b", now=LATER, lease=LEASE)


def test_a_lapsed_claim_returns_the_instance_to_the_others(engine: Engine, leases: Leases) -> None:
    ids = due_payments(engine, 2)
    assert len(leases.claim_due(LATER, owner="crashed", lease=LEASE)) == 2
    assert leases.claim_due(LATER + LEASE - timedelta(seconds=1), owner="b", lease=LEASE) == []
    retaken = leases.claim_due(LATER + LEASE + timedelta(seconds=1), owner="b", lease=LEASE)
    assert [instance.id for instance in retaken] == ids


def test_only_due_instances_are_claimed_earliest_first(
    store: SqlStore, leases: Leases, clock: ManualClock
) -> None:
    engine = Engine(store, flows=FLOWS, clock=clock)
    late = engine.start("ewallet_payment", instance_id="late", wallet="ovo", amount=1).id
    clock.advance(timedelta(minutes=5))
    engine.start("ewallet_payment", instance_id="early-not-due", wallet="ovo", amount=1)
    due_at = T0 + timedelta(minutes=16)  # only the first one's 15 minutes have passed
    assert [i.id for i in leases.claim_due(due_at, owner="a", lease=LEASE)] == [late]
    assert [i.id for i in leases.claim_due(due_at, owner="a", lease=LEASE, limit=5)] == []


def test_claims_do_not_change_what_the_engine_sees(engine: Engine, leases: Leases) -> None:
    (pid,) = due_payments(engine, 1)
    before = engine.get(pid)
    leases.claim(pid, owner="a", now=LATER, lease=LEASE)
    assert engine.get(pid) == before
    engine.fire(pid, "send_registration", actor="merchant", idempotency_key="k")
    assert engine.get(pid).version == 1


def test_claims_refuse_a_naive_time_or_a_lease_that_is_not_positive(
    engine: Engine, leases: Leases
) -> None:
    (pid,) = due_payments(engine, 1)
    with pytest.raises(InvalidInstanceData):
        leases.claim(pid, owner="a", now=LATER.replace(tzinfo=None), lease=LEASE)
    with pytest.raises(InvalidInstanceData):
        leases.claim_due(LATER, owner="a", lease=timedelta(0))
    assert leases.claim(pid, owner="a", now=LATER, lease=LEASE)  # nothing was claimed above


def test_concurrent_claimers_split_the_due_instances(engine: Engine, db_url: str) -> None:
    ids = set(due_payments(engine, 60))
    stores = [SqlStore(db_url) for _ in range(4)]
    taken: dict[str, list[str]] = {}
    barrier = threading.Barrier(len(stores))

    def claim_all(owner: str, own_store: SqlStore) -> None:
        barrier.wait(timeout=10)
        mine: list[str] = []
        while batch := Leases(own_store).claim_due(LATER, owner=owner, lease=LEASE, limit=7):
            mine.extend(instance.id for instance in batch)
        taken[owner] = mine

    run_together(stores, lambda n, own_store: claim_all(f"r{n}", own_store))
    claimed = [pid for mine in taken.values() for pid in mine]
    assert len(taken) == len(stores)
    assert sorted(claimed) == sorted(ids)  # every due instance once, none twice
