"""The outbox and the listeners: an event is stored if and only if its step committed, and
listeners hear of committed steps only, without being able to undo or fail one.

Runs in memory, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert

from fsm import (
    Actor,
    Engine,
    FireRequest,
    InvalidInstanceData,
    ManualClock,
    MemoryStore,
    SqlStore,
    StorageError,
    TransitionNotAllowed,
    TransitionResult,
)
from fsm._tap import Tap
from fsm.events import SCHEMA_VERSION, Event
from fsm.flows import EVENT_TYPES, FLOWS
from fsm.store.outbox import Delivery, Outbox
from fsm.store.tables import OUTBOX_TABLE
from tests.conftest import AnyStore
from tests.flow_versions import CATALOG as VERSIONED
from tests.flow_versions import FIRST
from tests.fsm.conftest import T0
from tests.fsm.test_persistence import MINUTE, PATH, make_instance, record_for

PAID = ("confirm_payment", Actor.STATUS_INQUIRY, None)
TAKEN = (
    '{"id":"taken","type":"x","flow":"f","payment_id":"p","reference":null,"amount":null,'
    '"currency":"IDR","wallet":null,"state":"s","previous_state":"r","transition":"t",'
    '"version":1,"occurred_at":"2026-11-23T03:00:00+00:00","schema":1}'
)


@pytest.fixture
def store(any_store: AnyStore) -> AnyStore:
    return any_store


@pytest.fixture
def engine(store: AnyStore, clock: ManualClock) -> Engine:
    return Engine(store, flows=FLOWS, clock=clock, event_types=EVENT_TYPES)


def stored_events(store: AnyStore) -> list[Event]:
    if isinstance(store, MemoryStore):
        return store.outbox_events()
    return Outbox(store).events()


def to_paid(engine: Engine, clock: ManualClock, *, reference: str = "ORD-1") -> str:
    pid = engine.start("ewallet_payment", wallet="ovo", amount=25000).id
    for index, (event, actor, payload) in enumerate([*PATH, PAID]):
        clock.advance(MINUTE)
        if payload is not None:
            payload = {**payload, "reference_no": reference}
        engine.fire(pid, event, actor=actor, idempotency_key=f"{pid}-{index}", payload=payload)
    return pid


def test_a_step_into_a_settled_state_stores_its_event_with_the_schema(
    engine: Engine, store: AnyStore, clock: ManualClock
) -> None:
    pid = to_paid(engine, clock)
    clock.advance(MINUTE)
    engine.fire(pid, "confirm_order", actor="merchant", idempotency_key="confirm")

    paid, confirmed = stored_events(store)
    steps = engine.history(pid)
    assert (paid.type, confirmed.type) == ("payment.paid", "payment.confirmed")
    assert paid.as_dict() == {
        "id": paid.id,
        "type": "payment.paid",
        "flow": "ewallet_payment",
        "payment_id": pid,
        "reference": "ORD-1",
        "amount": "25000",
        "currency": "IDR",
        "wallet": "ovo",
        "state": "paid",
        "previous_state": "status_check_requested",
        "transition": "confirm_payment",
        "version": steps[-2].seq,
        "occurred_at": steps[-2].occurred_at.isoformat(),
        "schema": SCHEMA_VERSION,
        "refunded_amount": None,
        "flow_version": 2,
    }
    assert paid.occurred_at.utcoffset() == timedelta(0)
    assert confirmed.version == steps[-1].seq
    assert paid.id != confirmed.id
    assert Event.from_json(paid.to_json()) == paid
    later = {**paid.as_dict(), "schema": 3, "added_later": "x"}  # a newer sender's event
    assert Event.from_json(json.dumps(later)) == replace(paid, schema=3)
    assert Event.from_json(TAKEN).flow_version == 1  # an older sender's event reads too


def test_only_steps_into_a_typed_state_store_events(
    engine: Engine, store: AnyStore, clock: ManualClock
) -> None:
    pid = engine.start("ewallet_payment", wallet="ovo", amount=1000).id
    for index, (event, actor, payload) in enumerate(PATH):
        clock.advance(MINUTE)
        engine.fire(pid, event, actor=actor, idempotency_key=f"k{index}", payload=payload)
    assert stored_events(store) == []


def test_only_entering_a_state_or_moving_the_refunded_total_stores_an_event(
    engine: Engine, store: AnyStore, clock: ManualClock
) -> None:
    pid = to_paid(engine, clock)
    steps = [
        ("request_refund", "merchant", {"amount": "10000", "request_id": "r1"}),
        ("refund_payment", "status_inquiry", {"refunded_amount": "10000"}),
        ("request_refund", "merchant", {"amount": "15000", "request_id": "r2"}),
        ("refund_payment", "status_inquiry", {"refunded_amount": "25000"}),
        ("refund_payment", "status_inquiry", {"refunded_amount": "25000"}),  # told again
    ]
    for index, (event, actor, payload) in enumerate(steps):
        clock.advance(MINUTE)
        engine.fire(pid, event, actor=actor, idempotency_key=f"step-{index}", payload=payload)
    assert [(e.type, e.previous_state, e.refunded_amount) for e in stored_events(store)] == [
        ("payment.paid", "status_check_requested", None),
        ("payment.refunded", "paid", "10000"),
        ("payment.refunded", "refunded", "25000"),
    ]


def test_a_repeat_or_a_refusal_stores_no_second_event(
    engine: Engine, store: AnyStore, clock: ManualClock
) -> None:
    pid = to_paid(engine, clock)
    before = stored_events(store)
    engine.fire(pid, PAID[0], actor=PAID[1], idempotency_key=f"{pid}-{len(PATH)}")
    with pytest.raises(TransitionNotAllowed):
        engine.fire(pid, "fail_payment", actor="status_inquiry", idempotency_key="late")
    assert stored_events(store) == before
    assert len(before) == 1


def test_an_engine_without_event_types_stores_none(store: AnyStore, clock: ManualClock) -> None:
    to_paid(Engine(store, flows=FLOWS, clock=clock), clock)
    assert stored_events(store) == []


def test_a_unit_that_rolls_back_takes_its_event_with_it(store: AnyStore) -> None:
    store.insert_instance(make_instance())
    loaded = store.get("pay-1")
    record = record_for(loaded, "abandon_checkout", "checkout_abandoned", Actor.TIMER, "t", T0)
    tap = Tap(store, EVENT_TYPES)

    def write_then_fail() -> None:
        with tap.unit() as unit:
            unit.load("pay-1")
            unit.apply(record, expected_version=0, deadline_at=None, bound={})
            raise RuntimeError("the caller failed after writing")

    with pytest.raises(RuntimeError, match="after writing"):
        write_then_fail()

    assert stored_events(store) == []
    assert store.get("pay-1") == loaded
    with tap.unit() as unit:
        unit.load("pay-1")
        unit.apply(record, expected_version=0, deadline_at=None, bound={})
    assert [event.type for event in stored_events(store)] == ["payment.checkout_abandoned"]


def test_a_step_whose_event_cannot_be_stored_is_not_applied(
    db_url: str, clock: ManualClock
) -> None:
    store = SqlStore(db_url)
    store.create_schema()
    engine = Engine(store, flows=FLOWS, clock=clock, event_types=EVENT_TYPES)
    pid = engine.start("ewallet_payment", wallet="ovo", amount=1000).id
    with store.transaction() as conn:  # an event already holds the step's place
        conn.execute(
            insert(OUTBOX_TABLE),
            {
                "id": "taken",
                "instance_id": pid,
                "seq": 1,
                "type": "x",
                "body": Event.from_json(TAKEN).to_json(),
                "created_at": T0,
                "status": "delivered",
                "attempts": 1,
                "next_attempt_at": T0,
            },
        )
    with pytest.raises(StorageError):
        engine.fire(pid, "abandon_checkout", actor="timer", idempotency_key="t")
    assert engine.get(pid).state == "checkout_requested"
    assert engine.history(pid) == []
    assert [entry.status for entry in Outbox(store).entries()] == [Delivery.DELIVERED]
    store.dispose()


# --- listeners -------------------------------------------------------------------------------


@pytest.fixture
def heard(engine: Engine) -> Iterator[list[tuple[TransitionResult, Event | None, str]]]:
    """What a listener heard, with the state the store held for it when it was called."""
    calls: list[tuple[TransitionResult, Event | None, str]] = []

    def listener(result: TransitionResult, event: Event | None) -> None:
        stored = engine.store.get(result.record.instance_id)  # read outside the step's unit
        calls.append((result, event, stored.state))

    engine.listeners.add(listener)
    yield calls
    engine.listeners.remove(listener)


def test_listeners_hear_each_committed_step_after_it_committed(
    engine: Engine, store: AnyStore, clock: ManualClock, heard: list[Any]
) -> None:
    pid = to_paid(engine, clock)
    assert [result.record for result, _, _ in heard] == engine.history(pid)
    assert [state for _, _, state in heard] == [r.dest for r in engine.history(pid)]
    assert [event for _, event, _ in heard if event is not None] == stored_events(store)
    assert heard[-1][0].instance == engine.get(pid)


def test_listeners_hear_nothing_of_a_repeat_a_refusal_or_a_rolled_back_step(
    engine: Engine, clock: ManualClock, heard: list[Any]
) -> None:
    pid = engine.start("ewallet_payment", wallet="ovo", amount=1000).id
    engine.fire(pid, "send_registration", actor="merchant", idempotency_key="reg")
    engine.fire(pid, "send_registration", actor="merchant", idempotency_key="reg")
    with pytest.raises(TransitionNotAllowed):
        engine.fire(pid, "confirm_order", actor="merchant", idempotency_key="early")
    other = engine.start("ewallet_payment", wallet="ovo", amount=1000, reference_no="ORD-9").id
    engine.fire(other, "send_registration", actor="merchant", idempotency_key="reg")
    with pytest.raises(Exception, match="ORD-9"):  # binds another live payment's reference
        engine.fire(
            pid,
            "accept_registration",
            actor="provider_response",
            idempotency_key="acc",
            payload={"tx_id": "TX", "reference_no": "ORD-9"},
        )
    assert [(r.record.instance_id, r.record.event) for r, _, _ in heard] == [
        (pid, "send_registration"),
        (other, "send_registration"),
    ]


def test_a_failing_listener_neither_fails_nor_undoes_the_step(
    engine: Engine, store: AnyStore, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(result: TransitionResult, event: Event | None) -> None:
        raise RuntimeError("listener bug")

    later: list[str] = []
    engine.listeners.add(broken)
    engine.listeners.add(lambda result, event: later.append(result.record.event))
    pid = engine.start("ewallet_payment", wallet="ovo", amount=1000).id
    with caplog.at_level(logging.ERROR, logger="fsm.listeners"):
        result = engine.fire(pid, "abandon_checkout", actor="timer", idempotency_key="t")

    assert engine.get(pid).state == result.record.dest == "checkout_abandoned"
    assert [event.type for event in stored_events(store)] == ["payment.checkout_abandoned"]
    assert later == ["abandon_checkout"]
    assert [record.getMessage() for record in caplog.records] == ["listener failed"]
    assert caplog.records[0].exc_info is not None


def test_fire_many_tells_listeners_of_each_applied_step_once_committed(
    engine: Engine, store: AnyStore, heard: list[Any]
) -> None:
    first = engine.start("ewallet_payment", wallet="ovo", amount=1000).id
    second = engine.start("ewallet_payment", wallet="ovo", amount=2000).id
    engine.fire_many(
        [
            FireRequest(first, "abandon_checkout", actor="timer", idempotency_key="t"),
            FireRequest(second, "send_registration", actor="merchant", idempotency_key="r"),
            FireRequest(second, "confirm_order", actor="merchant", idempotency_key="no"),
        ]
    )
    assert [(r.record.instance_id, state) for r, _, state in heard] == [
        (first, "checkout_abandoned"),
        (second, "registration_sent"),
    ]
    assert [event.payment_id for event in stored_events(store)] == [first]


# --- the event types -------------------------------------------------------------------------


def test_the_built_in_flows_name_the_events_a_service_acts_on() -> None:
    payment = EVENT_TYPES["ewallet_payment"]
    assert {payment[s] for s in ("paid", "failed", "expired", "refunded", "voided")} == {
        "payment.paid",
        "payment.failed",
        "payment.expired",
        "payment.refunded",
        "payment.voided",
    }
    assert "status_check_requested" not in payment
    assert EVENT_TYPES["astrapay_payment"]["paid"] == "payment.paid"
    assert dict(EVENT_TYPES["astrapay_link"]) == {
        "linked": "link.linked",
        "link_failed": "link.failed",
        "link_expired": "link.expired",
        "unlinked": "link.unlinked",
        "registration_confirmed": "link.confirmed",
    }
    confirmed = ("order_confirmed", "failure_confirmed", "expiry_confirmed")
    assert {payment[s] for s in confirmed} == {"payment.confirmed"}
    assert EVENT_TYPES["astrapay_payment"]["customer_updated"] == "payment.confirmed"


def test_text_that_is_not_an_event_is_refused_with_a_typed_error() -> None:
    with pytest.raises(InvalidInstanceData, match="not an event"):
        Event.from_json('{"id": "x"}')
    with pytest.raises(InvalidInstanceData, match="not an event"):
        Event.from_json("not json")


def test_moving_a_payment_to_another_flow_version_stores_no_event(
    store: AnyStore, clock: ManualClock
) -> None:
    old = Engine(store, flows=FIRST, clock=clock, event_types=EVENT_TYPES)
    pid = to_paid(old, clock)
    waiting = old.start("ewallet_payment", wallet="dana", amount=1000).id
    before = stored_events(store)
    new = Engine(store, flows=VERSIONED, clock=clock, event_types=EVENT_TYPES)
    moved = new.migrate("ewallet_payment", 1, 2, by="ops")
    assert {m.instance_id: (m.source, m.dest) for m in moved}[pid] == ("paid", "paid")
    assert (new.get(waiting).flow_version, new.get(pid).flow_version) == (2, 2)
    assert stored_events(store) == before  # the paid payment is not announced again
