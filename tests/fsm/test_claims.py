"""Reconciler claims and call intents in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest

from fsm import Engine, InstanceNotFound, ManualClock, SqlStore
from fsm.errors import CallInDoubt, InvalidInstanceData
from fsm.flows import FLOWS
from tests.fsm.conftest import T0

LEASE = timedelta(minutes=2)


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
    engine: Engine, store: SqlStore
) -> None:
    ids = due_payments(engine, 3)
    first = store.claim_due(LATER, owner="a", lease=LEASE)
    assert [instance.id for instance in first] == ids
    assert store.claim_due(LATER, owner="b", lease=LEASE) == []
    store.release(ids[:1], owner="a")
    assert [instance.id for instance in store.claim_due(LATER, owner="b", lease=LEASE)] == ids[:1]


def test_release_leaves_another_owners_claim_alone(engine: Engine, store: SqlStore) -> None:
    (pid,) = due_payments(engine, 1)
    assert store.claim(pid, owner="a", now=LATER, lease=LEASE)
    store.release([pid], owner="b")
    assert not store.claim(pid, owner="b", now=LATER, lease=LEASE)


def test_a_lapsed_claim_returns_the_instance_to_the_others(engine: Engine, store: SqlStore) -> None:
    ids = due_payments(engine, 2)
    assert len(store.claim_due(LATER, owner="crashed", lease=LEASE)) == 2
    assert store.claim_due(LATER + LEASE - timedelta(seconds=1), owner="b", lease=LEASE) == []
    retaken = store.claim_due(LATER + LEASE + timedelta(seconds=1), owner="b", lease=LEASE)
    assert [instance.id for instance in retaken] == ids


def test_only_due_instances_are_claimed_earliest_first(store: SqlStore, clock: ManualClock) -> None:
    engine = Engine(store, flows=FLOWS, clock=clock)
    late = engine.start("ewallet_payment", instance_id="late", wallet="ovo", amount=1).id
    clock.advance(timedelta(minutes=5))
    engine.start("ewallet_payment", instance_id="early-not-due", wallet="ovo", amount=1)
    due_at = T0 + timedelta(minutes=16)  # only the first one's 15 minutes have passed
    assert [i.id for i in store.claim_due(due_at, owner="a", lease=LEASE)] == [late]
    assert [i.id for i in store.claim_due(due_at, owner="a", lease=LEASE, limit=5)] == []


def test_claims_do_not_change_what_the_engine_sees(engine: Engine, store: SqlStore) -> None:
    (pid,) = due_payments(engine, 1)
    before = engine.get(pid)
    store.claim(pid, owner="a", now=LATER, lease=LEASE)
    assert engine.get(pid) == before
    engine.fire(pid, "send_registration", actor="merchant", idempotency_key="k")
    assert engine.get(pid).version == 1


def test_claims_refuse_a_naive_time_or_a_lease_that_is_not_positive(
    engine: Engine, store: SqlStore
) -> None:
    (pid,) = due_payments(engine, 1)
    with pytest.raises(InvalidInstanceData):
        store.claim(pid, owner="a", now=LATER.replace(tzinfo=None), lease=LEASE)
    with pytest.raises(InvalidInstanceData):
        store.claim_due(LATER, owner="a", lease=timedelta(0))
    assert store.claim(pid, owner="a", now=LATER, lease=LEASE)  # nothing was claimed above


def test_concurrent_claimers_split_the_due_instances(
    engine: Engine, store: SqlStore, db_url: str
) -> None:
    ids = set(due_payments(engine, 60))
    stores = [SqlStore(db_url) for _ in range(4)]
    taken: dict[str, list[str]] = {}
    barrier = threading.Barrier(len(stores))

    def claim_all(owner: str, own_store: SqlStore) -> None:
        barrier.wait(timeout=10)
        mine: list[str] = []
        while batch := own_store.claim_due(LATER, owner=owner, lease=LEASE, limit=7):
            mine.extend(instance.id for instance in batch)
        taken[owner] = mine

    run_together(stores, lambda n, own_store: claim_all(f"r{n}", own_store))
    claimed = [pid for mine in taken.values() for pid in mine]
    assert len(taken) == len(stores)
    assert sorted(claimed) == sorted(ids)  # every due instance once, none twice


def test_an_intent_stays_open_until_finished(engine: Engine, store: SqlStore) -> None:
    (pid,) = due_payments(engine, 1)
    intent_id = store.record_intent(
        pid,
        "registration",
        at=T0,
        reference_no="ORD-1",
        amount="1000",
        request={"referenceNo": "ORD-1", "amt": "1000", "merchantToken": "secret-token"},
    )
    (open_intent,) = store.open_intents(recorded_before=T0)
    assert (open_intent.id, open_intent.call, open_intent.amount) == (
        intent_id,
        "registration",
        "1000",
    )
    assert open_intent.request["merchantToken"] != "secret-token"
    assert store.open_intents(recorded_before=T0 - timedelta(seconds=1)) == []
    assert store.finish_intent(intent_id, outcome="answered", at=T0 + timedelta(seconds=1))
    assert not store.finish_intent(intent_id, outcome="again", at=T0 + timedelta(seconds=2))
    assert store.open_intents(recorded_before=LATER) == []
    (done,) = store.intents(pid)
    assert (done.outcome, done.finished_at) == ("answered", T0 + timedelta(seconds=1))


def test_an_intent_for_an_unknown_instance_is_refused(store: SqlStore) -> None:
    with pytest.raises(InstanceNotFound):
        store.record_intent("nope", "inquiry", at=T0)
    assert store.open_intents(recorded_before=LATER) == []


def test_an_intent_with_a_naive_time_stores_nothing(engine: Engine, store: SqlStore) -> None:
    (pid,) = due_payments(engine, 1)
    with pytest.raises(InvalidInstanceData):
        store.record_intent(pid, "inquiry", at=T0.replace(tzinfo=None))
    assert store.intents(pid) == []


def test_an_exclusive_call_is_refused_while_one_of_its_kind_is_open(
    engine: Engine, store: SqlStore
) -> None:
    (pid,) = due_payments(engine, 1)
    first = store.record_intent(pid, "cancel", at=T0, exclusive=True)
    with pytest.raises(CallInDoubt):
        store.record_intent(pid, "cancel", at=T0, exclusive=True)
    store.record_intent(pid, "inquiry", at=T0)  # other calls, and non-exclusive ones, go ahead
    store.record_intent(pid, "inquiry", at=T0)
    store.finish_intent(first, outcome="answered", at=T0)
    store.record_intent(pid, "cancel", at=T0, exclusive=True)  # the first one is answered now
    assert [i.call for i in store.intents(pid)].count("cancel") == 2


def test_racing_exclusive_calls_let_exactly_one_through(
    engine: Engine, store: SqlStore, db_url: str
) -> None:
    (pid,) = due_payments(engine, 1)
    stores = [SqlStore(db_url) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    outcomes: list[str] = []

    def cancel(own_store: SqlStore) -> None:
        barrier.wait(timeout=10)
        try:
            own_store.record_intent(pid, "cancel", at=T0, exclusive=True)
            outcomes.append("recorded")
        except CallInDoubt:
            outcomes.append("in doubt")

    run_together(stores, lambda _n, own_store: cancel(own_store))
    assert sorted(outcomes) == ["in doubt"] * 3 + ["recorded"]
    assert len(store.intents(pid)) == 1
