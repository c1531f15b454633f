"""Damaged rows and a clock that steps back, on SQLite and PostgreSQL.

A row written by hand (plain SQL) with a payload that is not JSON, or an instance in a state its
flow does not know, is read as far as it goes and named; it never stops a reader. A step is never
stamped before the one it follows, whatever the clock says.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from adapters.inbound.journal import InboundJournal
from adapters.reconcile.journal import CallJournal
from fsm import Actor, Engine, ManualClock, SqlStore, Verdict, replay_instance
from fsm._payload import UnreadablePayload
from fsm.flows import FLOWS
from fsm.render.audit import audit_html
from fsm.render.diagram import path_to_dot

FLOW = FLOWS["ewallet_payment"]
STEP = timedelta(minutes=1)
PATH: list[tuple[str, Actor, dict[str, Any] | None]] = [
    ("send_registration", Actor.MERCHANT, {"note": "sent"}),
    ("accept_registration", Actor.PROVIDER_RESPONSE, {"tx_id": "TX1", "reference_no": "ORD-1"}),
    ("request_payment", Actor.MERCHANT, None),
]


def driven(engine: Engine, clock: ManualClock, pid: str = "pay-1") -> str:
    engine.start("ewallet_payment", instance_id=pid, wallet="ovo", amount=25000)
    for event, actor, payload in PATH:
        clock.advance(STEP)
        engine.fire(pid, event, actor=actor, idempotency_key=event, payload=payload)
    return pid


def run_sql(store: SqlStore, statement: str, **values: Any) -> None:
    with store.engine.begin() as conn:
        assert conn.execute(text(statement), values).rowcount == 1


@pytest.mark.parametrize(
    ("stored", "problem"),
    [('{"tx_id": "TX1", ', "not JSON"), ("[1, 2]", "JSON list, not an object")],
)
def test_a_payload_that_is_not_a_json_object_is_read_empty_and_named(
    store: SqlStore, engine: Engine, clock: ManualClock, stored: str, problem: str
) -> None:
    pid = driven(engine, clock)
    run_sql(
        store,
        "update transition_log set payload = :p where instance_id = :i and seq = 2",
        p=stored,
        i=pid,
    )

    history = store.history(pid)
    assert [r.seq for r in history] == [1, 2, 3]
    assert isinstance(history[1].payload, UnreadablePayload)
    assert history[1].payload == {}
    assert problem in history[1].payload.problem
    assert history[0].payload == {"note": "sent"}

    result = replay_instance(FLOW, store.get(pid), history)
    assert result.verdict is Verdict.DAMAGED
    assert result.divergence is None
    assert (result.state, result.applied) == ("payment_requested", 3)
    (note,) = result.damaged
    assert note.startswith("step 2: its stored payload is ")
    assert problem in note

    html = audit_html(FLOW, store.get(pid), history, [], result, svg="<svg></svg>")
    assert 'data-verdict="damaged"' in html
    assert "Damaged row at step 2: its stored payload is" in html
    assert "stored payload unreadable" in html

    # the engine carries on: a repeated key still finds its (damaged) first outcome
    repeat = engine.fire(
        pid, "accept_registration", actor="provider_response", idempotency_key="accept_registration"
    )
    assert repeat.duplicate
    assert repeat.record.seq == 2


def test_a_divergence_after_a_damaged_row_keeps_both(
    store: SqlStore, engine: Engine, clock: ManualClock
) -> None:
    pid = driven(engine, clock)
    run_sql(
        store, "update transition_log set payload = 'x' where instance_id = :i and seq = 1", i=pid
    )
    run_sql(
        store, "update transition_log set source = 'paid' where instance_id = :i and seq = 3", i=pid
    )
    result = replay_instance(FLOW, store.get(pid), store.history(pid))
    assert result.verdict is Verdict.DIVERGED
    assert result.divergence is not None
    assert result.divergence.seq == 3
    assert [note.split(":")[0] for note in result.damaged] == ["step 1"]


def test_damaged_refusals_intents_and_inbound_attempts_are_read(
    store: SqlStore, engine: Engine, clock: ManualClock
) -> None:
    pid = driven(engine, clock)
    with pytest.raises(Exception, match="refused"):
        engine.fire(pid, "confirm_order", actor="merchant", idempotency_key="early")
    calls, inbound = CallJournal(store, clock=clock), InboundJournal(store)
    intent = calls.record(pid, "inquiry", at=clock.now(), request={"tXid": "TX1"})
    inbound.record(
        received_at=clock.now(),
        endpoint="notification",
        outcome="refused",
        status_code=401,
        parameters={"tXid": "TX1"},
    )
    run_sql(store, "update rejected_event set payload = '{' where instance_id = :i", i=pid)
    run_sql(store, "update call_intent set request = 'null' where id = :i", i=intent)
    run_sql(store, "update inbound_attempt set parameters = '' where endpoint = 'notification'")

    (refused,) = store.rejections(pid)
    assert isinstance(refused.payload, UnreadablePayload)
    assert refused.reason == "not_allowed"
    (call,) = calls.of_instance(pid)
    assert isinstance(call.request, UnreadablePayload)
    assert [i.id for i in calls.still_open()] == [intent]
    (attempt,) = inbound.latest()
    assert isinstance(attempt.parameters, UnreadablePayload)


def test_an_instance_in_a_state_its_flow_does_not_know_is_reported(
    store: SqlStore, engine: Engine, clock: ManualClock
) -> None:
    pid = driven(engine, clock)
    run_sql(store, "update flow_instance set state = 'limbo' where id = :i", i=pid)
    instance = store.get(pid)
    history = store.history(pid)
    result = replay_instance(FLOW, instance, history)
    assert result.verdict is Verdict.DIVERGED
    assert result.divergence is not None
    assert result.divergence.seq is None
    assert result.divergence.reason == (
        "stored row is in state 'limbo', which flow ewallet_payment does not know"
    )
    assert '"limbo"' in path_to_dot(FLOW, instance, history, [])
    assert engine.allowed_events(pid) == ()


def test_a_step_is_never_stamped_before_the_one_it_follows(
    store: SqlStore, engine: Engine, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    pid = engine.start("ewallet_payment", instance_id="pay-1", wallet="ovo", amount=25000).id
    clock.advance(STEP)
    engine.fire(pid, "send_registration", actor="merchant", idempotency_key="reg")
    first = clock.now()
    clock.advance(-10 * STEP)  # the host's clock steps back ten minutes
    with caplog.at_level(logging.WARNING, logger="fsm.engine"):
        step = engine.fire(
            pid,
            "accept_registration",
            actor="provider_response",
            idempotency_key="acc",
            payload={"tx_id": "TX1", "reference_no": "ORD-1"},
        ).record
    assert step.occurred_at == first
    (warning,) = [r for r in caplog.records if r.name == "fsm.engine" and r.levelno >= 30]
    assert warning.getMessage().startswith("clock behind the last step")
    assert (warning.__dict__["instance"], warning.__dict__["event"]) == (pid, "accept_registration")
    assert warning.__dict__["reason"] == "clock 600.000000 s behind"

    stored = store.get(pid)
    assert stored.updated_at == first
    # the deadline is still counted from the clock the timer reads: registered's 15 minutes
    assert stored.deadline_at == clock.now() + timedelta(minutes=15)

    with pytest.raises(Exception, match="refused"):  # a refusal is stamped the same way
        engine.fire(pid, "confirm_order", actor="merchant", idempotency_key="early")
    assert store.rejections(pid)[-1].occurred_at == first

    clock.advance(20 * STEP)
    later = engine.fire(pid, "request_payment", actor="merchant", idempotency_key="req").record
    assert later.occurred_at == clock.now()
    times = [r.occurred_at for r in store.history(pid)]
    assert times == sorted(times)
    result = replay_instance(FLOW, store.get(pid), store.history(pid))
    assert result.verdict is Verdict.CONSISTENT
