"""The engine's telemetry, collected by the SDK's in-memory readers from real runs: outcomes
counted, payments per state back to zero once a payment finished, settling timed once, waits
timed, a span per fire, the oldest unfinished payment's age, and no payment id in any metric.

Runs in memory, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import metrics, trace

from fsm import Actor, Engine, FireRequest, ManualClock, TransitionNotAllowed
from fsm._tap import Tap, TappedUnit
from fsm.flows import FLOWS
from fsm.telemetry import EngineTelemetry, GlobalProvider, configured, watch_oldest_unsettled
from tests.conftest import AnyStore
from tests.fsm.test_events import to_paid
from tests.fsm.test_persistence import MINUTE
from tests.telemetry_rig import Collected, attributes

FLOW = "ewallet_payment"
TRANSITIONS = "ewallet_fsm.transitions"
PAYMENTS = "ewallet_fsm.payments"


@pytest.fixture
def store(any_store: AnyStore) -> AnyStore:
    return any_store


@pytest.fixture
def collected() -> Iterator[Collected]:
    found = Collected()
    yield found
    found.close()


@pytest.fixture
def engine(store: AnyStore, clock: ManualClock, collected: Collected) -> Engine:
    return Engine(store, flows=FLOWS, clock=clock, telemetry=collected.engine())


def assert_no_ids(collected: Collected, store: AnyStore) -> None:
    """No metric attribute names a payment: its id, reference or tXid."""
    ids: set[str | None] = set()
    for instance_id in store.instance_ids():
        instance = store.get(instance_id)
        ids |= {instance.id, instance.reference_no, instance.tx_id}
    ids.discard(None)
    assert ids
    assert not ids & set(collected.attribute_values())


def test_each_outcome_is_counted_by_flow_event_and_reason(
    engine: Engine, store: AnyStore, collected: Collected
) -> None:
    pid = engine.start(FLOW, wallet="ovo", amount=1000, reference_no="ORD-T1").id
    engine.fire(pid, "send_registration", actor="merchant", idempotency_key="reg")
    engine.fire(pid, "send_registration", actor="merchant", idempotency_key="reg")  # again
    with pytest.raises(TransitionNotAllowed):
        engine.fire(pid, "confirm_payment", actor="status_inquiry", idempotency_key="c")
    with pytest.raises(TransitionNotAllowed):
        engine.fire(pid, f"teleport-{pid}", actor="merchant", idempotency_key="t")
    engine.fire_many([FireRequest(pid, "fail_registration", "provider_response", "f")])

    assert collected.values(TRANSITIONS) == {
        attributes(flow=FLOW, event="send_registration", outcome="applied"): 1,
        attributes(flow=FLOW, event="send_registration", outcome="duplicate"): 1,
        attributes(flow=FLOW, event="confirm_payment", outcome="refused", reason="not_allowed"): 1,
        # an undeclared event is counted without its name, which any caller may make up
        attributes(flow=FLOW, event="", outcome="refused", reason="unknown_event"): 1,
        attributes(flow=FLOW, event="fail_registration", outcome="applied"): 1,
    }
    assert_no_ids(collected, store)


def test_payments_per_state_return_to_zero_once_a_payment_finished(
    engine: Engine, store: AnyStore, clock: ManualClock, collected: Collected
) -> None:
    pid = engine.start(FLOW, wallet="ovo", amount=1000).id
    assert collected.values(PAYMENTS) == {attributes(flow=FLOW, state="checkout_requested"): 1}
    engine.fire(pid, "send_registration", actor="merchant", idempotency_key="reg")
    assert collected.values(PAYMENTS) == {
        attributes(flow=FLOW, state="checkout_requested"): 0,
        attributes(flow=FLOW, state="registration_sent"): 1,
    }
    paid = to_paid(engine, clock, reference="ORD-T2")
    clock.advance(MINUTE)
    engine.fire(paid, "confirm_order", actor=Actor.MERCHANT, idempotency_key="confirm")

    waiting = {key: value for key, value in collected.values(PAYMENTS).items() if value}
    assert waiting == {attributes(flow=FLOW, state="registration_sent"): 1}  # the first one
    assert_no_ids(collected, store)


def test_time_to_settle_is_recorded_once_per_payment(
    engine: Engine, clock: ManualClock, collected: Collected
) -> None:
    pid = to_paid(engine, clock)  # six steps a minute apart
    clock.advance(MINUTE)
    engine.fire(pid, "confirm_order", actor=Actor.MERCHANT, idempotency_key="confirm")

    (settled,) = collected.histogram("ewallet_fsm.settle.duration")
    assert dict(settled.attributes or {}) == {"flow": FLOW, "state": "paid", "wallet": "ovo"}
    assert (settled.count, settled.sum) == (1, 6 * 60.0)


def test_a_wait_is_timed_when_a_step_takes_the_payment_on(
    engine: Engine, store: AnyStore, clock: ManualClock, collected: Collected
) -> None:
    pid = engine.start(FLOW, wallet="ovo", amount=1000).id
    engine.fire(pid, "send_registration", actor="merchant", idempotency_key="reg")
    clock.advance(3 * MINUTE)
    reply = {"tx_id": "TXOVO0001", "reference_no": "ORD-T3"}
    engine.fire(
        pid, "accept_registration", actor="provider_response", idempotency_key="a", payload=reply
    )

    (waited,) = collected.histogram("ewallet_fsm.state.wait")
    assert dict(waited.attributes or {}) == {
        "flow": FLOW,
        "state": "registration_sent",
        "wallet": "ovo",
    }
    assert (waited.count, waited.sum) == (1, 180.0)
    assert_no_ids(collected, store)


def test_each_fire_has_a_span_with_its_outcome(engine: Engine, collected: Collected) -> None:
    pid = engine.start(FLOW, wallet="ovo", amount=1000).id
    engine.fire(pid, "send_registration", actor="merchant", idempotency_key="reg")
    with pytest.raises(TransitionNotAllowed):
        engine.fire(pid, "confirm_payment", actor="status_inquiry", idempotency_key="c")

    applied, refused = collected.spans("fsm.fire")
    assert dict(applied.attributes or {}) == {
        "fsm.event": "send_registration",
        "fsm.flow": FLOW,
        "fsm.outcome": "applied",
    }
    assert dict(refused.attributes or {}) == {
        "fsm.event": "confirm_payment",
        "fsm.flow": FLOW,
        "fsm.outcome": "refused",
        "fsm.reason": "not_allowed",
    }


def test_the_oldest_unfinished_payment_is_read_from_the_store_when_collected(
    engine: Engine, clock: ManualClock, collected: Collected
) -> None:
    watch_oldest_unsettled(engine, meter_provider=collected.meters)
    to_paid(engine, clock)  # settled, though the merchant's confirmation may still be due
    finished = engine.start(FLOW, wallet="ovo", amount=1000).id
    engine.fire(finished, "send_registration", actor="merchant", idempotency_key="reg")
    engine.fire(finished, "fail_registration", actor="provider_response", idempotency_key="f")
    clock.advance(MINUTE)
    engine.start(FLOW, wallet="ovo", amount=1000)  # the oldest unfinished one
    clock.advance(MINUTE)
    engine.start(FLOW, wallet="dana", amount=1000)
    clock.advance(MINUTE)

    ages = collected.values("ewallet_fsm.unsettled.oldest_age")
    assert ages[attributes(flow=FLOW)] == 2 * 60.0  # not the paid or failed ones, started earlier
    assert ages[attributes(flow="astrapay_link")] == 0.0  # none waits


def test_without_an_sdk_the_engine_measures_nothing_and_wraps_no_unit(store: AnyStore) -> None:
    engine = Engine(store, flows=FLOWS)  # the global providers: the API's own in tests
    measured = Tap(store, None, EngineTelemetry().bound(engine.catalog))
    for tap in (engine._tap, measured):
        with tap.unit() as unit:
            assert not isinstance(unit, TappedUnit)
    pid = engine.start(FLOW, wallet="ovo", amount=1000).id
    assert engine.fire(pid, "send_registration", actor="merchant", idempotency_key="r").applied


def test_only_an_sdk_provider_counts_as_set_and_once_set_it_stays() -> None:
    collected = Collected()
    assert not configured(metrics.get_meter_provider())  # the API's proxy, in tests
    assert not configured(trace.get_tracer_provider())
    assert not configured(metrics.NoOpMeterProvider())
    assert configured(collected.meters)
    assert configured(collected.tracers)
    current: list[object] = [collected.meters]
    lookup = GlobalProvider(lambda: current[0])
    assert lookup.set()
    current[0] = metrics.NoOpMeterProvider()  # a process sets its provider once: never unset
    assert lookup.set()
    assert not GlobalProvider(metrics.NoOpMeterProvider).set()
    collected.close()
