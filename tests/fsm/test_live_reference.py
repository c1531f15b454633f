"""One live instance per flow and reference."""

from __future__ import annotations

import threading

import pytest

from fsm import Actor, Engine, ManualClock, ReferenceInUse
from fsm.flows import FLOWS
from tests.conftest import AnyStore
from tests.fsm.conftest import T0


@pytest.fixture
def store(any_store: AnyStore) -> AnyStore:
    """Every test here runs in memory, on SQLite and on PostgreSQL."""
    return any_store


def test_a_second_live_payment_with_one_reference_is_refused_until_the_first_ends(
    engine: Engine, store: AnyStore
) -> None:
    first = engine.start("ewallet_payment", wallet="dana", amount=1000, reference_no="ORD-7")
    with pytest.raises(ReferenceInUse) as refused:
        engine.start("ewallet_payment", wallet="dana", amount=1000, reference_no="ORD-7")
    assert (refused.value.flow, refused.value.reference_no, refused.value.live_id) == (
        "ewallet_payment",
        "ORD-7",
        first.id,
    )
    assert [i.id for i in store.find(reference_no="ORD-7")] == [first.id]
    # Another flow may use the same reference.
    engine.start("astrapay_link", wallet="astrapay", reference_no="ORD-7")

    engine.fire(first.id, "abandon_checkout", actor=Actor.TIMER, idempotency_key="gone")
    again = engine.start("ewallet_payment", wallet="dana", amount=1000, reference_no="ORD-7")
    assert again.id != first.id


def test_binding_another_live_payments_reference_is_refused_and_stores_nothing(
    engine: Engine,
) -> None:
    engine.start("ewallet_payment", wallet="ovo", amount=1000, reference_no="ORD-1")
    other = engine.start("ewallet_payment", wallet="ovo", amount=1000, reference_no="ORD-2")
    engine.fire(other.id, "send_registration", actor=Actor.MERCHANT, idempotency_key="reg")
    with pytest.raises(ReferenceInUse):
        engine.fire(
            other.id,
            "accept_registration",
            actor=Actor.PROVIDER_RESPONSE,
            idempotency_key="acc",
            payload={"tx_id": "TX-2", "reference_no": "ORD-1"},
        )
    after = engine.get(other.id)
    assert (after.state, after.version, after.reference_no) == ("registration_sent", 1, "ORD-2")
    assert len(engine.history(other.id)) == 1


def test_of_two_racing_starts_with_one_reference_exactly_one_wins(store: AnyStore) -> None:
    engines = [Engine(store, flows=FLOWS, clock=ManualClock(T0)) for _ in range(4)]
    barrier = threading.Barrier(len(engines))
    outcomes: list[str] = []

    def start(engine: Engine) -> None:
        barrier.wait()
        try:
            engine.start("ewallet_payment", wallet="dana", amount=500, reference_no="ORD-RACE")
            outcomes.append("started")
        except ReferenceInUse:
            outcomes.append("refused")

    threads = [threading.Thread(target=start, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["refused", "refused", "refused", "started"]
    assert len(store.find(reference_no="ORD-RACE")) == 1
