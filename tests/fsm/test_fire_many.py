"""``Engine.fire_many``: a batch in one transaction, each event answered as ``fire`` answers it."""

from __future__ import annotations

import pytest

from fsm import (
    Actor,
    ConcurrentTransition,
    Engine,
    FireRequest,
    FsmError,
    IdempotencyKeyReused,
    InstanceNotFound,
    InvalidInstanceData,
    ManualClock,
    RejectReason,
    SqlStore,
    TransitionNotAllowed,
    TransitionResult,
)
from fsm.flows import FLOWS
from tests.conftest import AnyStore
from tests.fsm.test_persistence import interleaving_flow

ACCEPTED = {"tx_id": "TX-1", "reference_no": "ORD-1"}
TX_ONLY = {"tx_id": "TX-1"}


@pytest.fixture
def store(any_store: AnyStore) -> AnyStore:
    """Every test here runs in memory, on SQLite and on PostgreSQL."""
    return any_store


def started(engine: Engine, count: int) -> list[str]:
    return [engine.start("ewallet_payment", wallet="ovo", amount=1000).id for _ in range(count)]


def send(pid: str, key: str = "reg") -> FireRequest:
    return FireRequest(pid, "send_registration", Actor.MERCHANT, key)


def test_a_batch_applies_every_event_and_commits_them_together(engine: Engine) -> None:
    pids = started(engine, 3)

    outcomes = engine.fire_many([send(pid) for pid in pids])

    assert all(isinstance(outcome, TransitionResult) and outcome.applied for outcome in outcomes)
    assert [engine.get(pid).state for pid in pids] == ["registration_sent"] * 3
    assert [[r.event for r in engine.history(pid)] for pid in pids] == [["send_registration"]] * 3


def test_a_refused_event_is_recorded_and_rolls_nothing_back(engine: Engine) -> None:
    first, refused, last = started(engine, 3)

    outcomes = engine.fire_many(
        [
            send(first),
            FireRequest(refused, "confirm_payment", Actor.STATUS_INQUIRY, "early"),
            send(last),
        ]
    )

    assert isinstance(outcomes[0], TransitionResult)
    assert isinstance(outcomes[1], TransitionNotAllowed)
    assert isinstance(outcomes[2], TransitionResult)
    assert (engine.get(first).version, engine.get(refused).version, engine.get(last).version) == (
        1,
        0,
        1,
    )
    (rejection,) = engine.rejections(refused)
    assert (rejection.event, rejection.reason) == ("confirm_payment", RejectReason.NOT_ALLOWED)


def test_events_for_one_payment_apply_in_order(engine: Engine) -> None:
    (pid,) = started(engine, 1)
    accept = FireRequest(pid, "accept_registration", "provider_response", "acc", ACCEPTED)

    first, second = engine.fire_many([send(pid), accept])

    assert isinstance(first, TransitionResult)
    assert isinstance(second, TransitionResult)
    assert (first.record.seq, second.record.seq, second.record.source) == (
        1,
        2,
        "registration_sent",
    )
    assert engine.get(pid).tx_id == "TX-1"  # the bound column, set by the second event


def test_repeated_and_reused_keys_get_the_first_outcome(engine: Engine) -> None:
    (pid,) = started(engine, 1)
    first = engine.fire(pid, "send_registration", actor="merchant", idempotency_key="reg")

    repeat, reused, again = engine.fire_many(
        [
            send(pid),
            FireRequest(pid, "fail_registration", Actor.TIMER, "reg"),
            send(pid, key="reg-2"),  # a new key: refused, registration was already sent
        ]
    )

    assert isinstance(repeat, TransitionResult)
    assert (repeat.duplicate, repeat.record) == (True, first.record)
    assert isinstance(reused, IdempotencyKeyReused)
    assert isinstance(again, TransitionNotAllowed)
    assert [r.reason for r in engine.rejections(pid)] == [
        RejectReason.DUPLICATE,
        RejectReason.KEY_REUSED,
        RejectReason.NOT_ALLOWED,
    ]
    assert engine.get(pid).version == 1


def test_bad_input_and_unknown_payments_are_answered_alone(engine: Engine) -> None:
    (pid,) = started(engine, 1)

    outcomes = engine.fire_many(
        [
            FireRequest(pid, "send_registration", "nobody", "k1"),
            FireRequest(pid, "send_registration", Actor.MERCHANT, ""),
            FireRequest(pid, "send_registration", Actor.MERCHANT, "k3", {"bad": object()}),
            send("no-such-payment"),
            send(pid),
        ]
    )

    assert [type(outcome) for outcome in outcomes[:4]] == [
        InvalidInstanceData,
        InvalidInstanceData,
        InvalidInstanceData,
        InstanceNotFound,
    ]
    assert isinstance(outcomes[4], TransitionResult)
    assert engine.rejections(pid) == []
    assert [record.idempotency_key for record in engine.history(pid)] == ["reg"]


def test_an_empty_batch_does_nothing(engine: Engine) -> None:
    assert engine.fire_many([]) == []


def test_fire_many_answers_as_fire_does_one_event_at_a_time(
    store: AnyStore, clock: ManualClock
) -> None:
    """The same mixed batch, once through fire_many and once through fire, on twin payments."""
    batched, single = (
        Engine(store, flows=FLOWS, clock=clock),
        Engine(store, flows=FLOWS, clock=clock),
    )
    # One live payment per reference: each twin has its own, so the accepted step binds none.
    twins = [
        [
            engine.start(
                "ewallet_payment", wallet="ovo", amount=1000, reference_no=f"{side}-{n}"
            ).id
            for n in range(3)
        ]
        for side, engine in (("batched", batched), ("single", single))
    ]
    scripts = [
        [
            send(pids[0]),
            FireRequest(pids[0], "accept_registration", Actor.PROVIDER_RESPONSE, "acc", TX_ONLY),
            send(pids[0], key="reg"),
            FireRequest(pids[1], "accept_registration", Actor.MERCHANT, "acc"),
            FireRequest(pids[1], "no_such_event", Actor.MERCHANT, "x"),
            send(pids[2]),
            FireRequest(pids[2], "abandon_checkout", Actor.TIMER, "reg"),
            FireRequest(pids[2], "fail_registration", Actor.TIMER, "late", {"why": "silence"}),
        ]
        for pids in twins
    ]

    many = batched.fire_many(scripts[0])
    one = [fire_once(single, request) for request in scripts[1]]

    assert [describe(outcome) for outcome in many] == [describe(outcome) for outcome in one]
    for left, right in zip(*twins, strict=True):
        assert strip(batched, left) == strip(single, right)


def fire_once(engine: Engine, request: FireRequest) -> TransitionResult | FsmError:
    try:
        return engine.fire(
            request.instance_id,
            request.event,
            actor=request.actor,
            idempotency_key=request.idempotency_key,
            payload=request.payload,
        )
    except FsmError as error:
        return error


def describe(outcome: TransitionResult | FsmError) -> tuple[object, ...]:
    if isinstance(outcome, TransitionResult):
        record = outcome.record
        return (record.seq, record.event, record.source, record.dest, outcome.duplicate)
    return (type(outcome).__name__, getattr(outcome, "reason", None))


def strip(engine: Engine, pid: str) -> tuple[object, ...]:
    """What is stored for a payment, less its id."""
    instance = engine.get(pid)
    steps = [(r.seq, r.event, r.dest, r.payload) for r in engine.history(pid)]
    refused = [(r.event, r.reason, r.version) for r in engine.rejections(pid)]
    return instance.state, instance.version, instance.tx_id, steps, refused


def test_the_batch_is_one_transaction(store: AnyStore, clock: ManualClock) -> None:
    """An event that fails outright takes the events before it back with it."""
    guard_calls: list[str] = []

    def second_call_fails() -> None:
        guard_calls.append("take")
        if len(guard_calls) == 2:
            raise RuntimeError("the guard failed")

    engine = Engine(store, flows={"handoff": interleaving_flow(second_call_fails)}, clock=clock)
    calm, fragile = (engine.start("handoff").id for _ in range(2))
    refused = FireRequest(calm, "take", Actor.OPERATOR, "refused")
    take = FireRequest(calm, "take", Actor.MERCHANT, "take")
    boom = FireRequest(fragile, "take", Actor.MERCHANT, "boom")

    with pytest.raises(RuntimeError, match="guard failed"):
        engine.fire_many([refused, take, boom])

    assert (engine.get(calm).version, engine.history(calm), engine.rejections(calm)) == (0, [], [])
    assert engine.get(fragile).version == 0


@pytest.mark.postgres
def test_a_batch_that_cannot_lock_its_payments_in_time_stores_nothing(
    postgres_schema_url: str, clock: ManualClock
) -> None:
    holder = SqlStore(postgres_schema_url)
    impatient = SqlStore(postgres_schema_url + "%20-clock_timeout%3D200")  # milliseconds
    try:
        holder.create_schema()
        engine, batch = (
            Engine(holder, flows=FLOWS, clock=clock),
            Engine(impatient, flows=FLOWS, clock=clock),
        )
        free, held = started(engine, 2)
        with holder.unit() as unit:
            unit.load(held)  # its row stays locked until this unit ends
            with pytest.raises(ConcurrentTransition) as info:
                batch.fire_many([send(free), send(held)])
        assert info.value.retryable
        assert (holder.get(free).version, holder.get(held).version) == (0, 0)
        again = batch.fire_many([send(free), send(held)])
        assert all(isinstance(outcome, TransitionResult) for outcome in again)
    finally:
        holder.dispose()
        impatient.dispose()
