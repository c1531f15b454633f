"""Refund requests and the refunded total in the engine, in memory and on both databases.

A refund request is a self-loop step on a settled payment (``request_refund``, by the merchant
or an operator) that records who asked for what and why and moves nothing; the void or refund
an inquiry reports binds the refunded total, stored on the instance and read back by every path.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from fsm import Actor, Engine, ManualClock, TransitionNotAllowed
from fsm.errors import RejectReason
from fsm.flows import FLOWS
from fsm.refunds import REQUEST_REFUND, refund_requests, refunded_total
from fsm.replay import Verdict, replay_instance
from tests.conftest import AnyStore
from tests.fsm.test_engine import TO_PAID, TO_STATUS_CHECK, drive, start_ovo


@pytest.fixture
def store(any_store: AnyStore) -> AnyStore:
    """Every test here runs in memory, on SQLite and on PostgreSQL."""
    return any_store


REQUEST = {
    "amount": "50000",
    "request_id": "rf-1",
    "reason": "one shirt returned",
    "requested_by": "siti@shop",
}


def request_refund(engine: Engine, pid: str, key: str = "refund:rf-1", **extra: Any) -> str:
    payload = {**REQUEST, **extra}
    result = engine.fire(
        pid, REQUEST_REFUND, actor=Actor.MERCHANT, idempotency_key=key, payload=payload
    )
    return result.state


def refund(engine: Engine, pid: str, total: Any, key: str) -> None:
    engine.fire(
        pid,
        "refund_payment",
        actor=Actor.STATUS_INQUIRY,
        idempotency_key=key,
        payload={"status": "2", "refunded_amount": total},
    )


def test_both_payment_flows_declare_the_request_on_every_refundable_state() -> None:
    for name, refundable in (
        ("ewallet_payment", {"paid", "order_confirmed", "refunded"}),
        ("astrapay_payment", {"paid", "customer_updated", "refunded"}),
    ):
        flow = FLOWS[name]
        loops = [spec for spec in flow.transitions if spec.event == REQUEST_REFUND]
        assert {spec.dest for spec in loops} == refundable
        for spec in loops:
            assert spec.sources == {spec.dest}
            assert spec.actors == {Actor.MERCHANT, Actor.OPERATOR}
            assert (spec.binds, spec.reversal) == ((), False)


def test_a_refund_request_is_logged_on_a_settled_payment_and_moves_nothing(
    engine: Engine, clock: ManualClock
) -> None:
    pid = start_ovo(engine)
    drive(engine, pid, TO_PAID)
    before = engine.get(pid)
    clock.advance(timedelta(minutes=3))
    assert request_refund(engine, pid) == "paid"
    after = engine.get(pid)
    assert (after.version, after.refunded_amount) == (before.version + 1, None)
    # paid waits for the merchant's confirmation, not a timer, before and after the request
    assert before.deadline_at is None
    assert after.deadline_at is None
    (step,) = refund_requests(engine.history(pid))
    assert (step.request_id, step.amount, step.reason, step.requested_by) == (
        "rf-1",
        "50000",
        "one shirt returned",
        "siti@shop",
    )
    assert step.actor == Actor.MERCHANT
    result = replay_instance(FLOWS["ewallet_payment"], after, engine.history(pid))
    assert result.verdict is Verdict.CONSISTENT


def test_a_refund_request_before_payment_is_refused(engine: Engine) -> None:
    pid = start_ovo(engine)
    drive(engine, pid, TO_STATUS_CHECK)
    with pytest.raises(TransitionNotAllowed) as refused:
        request_refund(engine, pid)
    assert refused.value.reason is RejectReason.NOT_ALLOWED
    with pytest.raises(TransitionNotAllowed) as wrong:
        engine.fire(pid, REQUEST_REFUND, actor=Actor.STATUS_INQUIRY, idempotency_key="x")
    assert wrong.value.reason in {RejectReason.NOT_ALLOWED, RejectReason.WRONG_ACTOR}


def test_refunds_bind_the_cumulative_total_and_a_further_request_is_allowed(
    engine: Engine, store: AnyStore
) -> None:
    pid = start_ovo(engine)
    drive(engine, pid, TO_PAID)
    request_refund(engine, pid)
    refund(engine, pid, "50000", "inquiry:refund:50000")
    assert (engine.get(pid).state, engine.get(pid).refunded_amount) == ("refunded", "50000")
    assert request_refund(engine, pid, key="refund:rf-2", request_id="rf-2") == "refunded"
    refund(engine, pid, "80000", "inquiry:refund:80000")
    stored = store.get(pid)  # through SQLAlchemy, not the unit's cursor
    assert (stored.state, stored.refunded_amount) == ("refunded", "80000")
    assert [p.refunded_amount for p in store.list_instances()] == ["80000"]
    assert refunded_total(stored) == "80000 of 150000 IDR refunded"
    assert [s.request_id for s in refund_requests(engine.history(pid))] == ["rf-1", "rf-2"]


@pytest.mark.parametrize("total", ["", "50.000", "5e4", "1" * 19, 50000, None])
def test_a_refund_without_an_exact_total_is_refused_and_binds_nothing(
    engine: Engine, total: Any
) -> None:
    pid = start_ovo(engine)
    drive(engine, pid, TO_PAID)
    with pytest.raises(TransitionNotAllowed) as refused:
        refund(engine, pid, total, "inquiry:refund:odd")
    assert refused.value.reason is RejectReason.INVALID_PAYLOAD
    assert "refunded_amount" in refused.value.detail
    assert (engine.get(pid).state, engine.get(pid).refunded_amount) == ("paid", None)


def test_a_void_binds_the_total_it_carries(engine: Engine) -> None:
    pid = start_ovo(engine)
    drive(engine, pid, TO_PAID)
    engine.fire(
        pid,
        "void_payment",
        actor=Actor.STATUS_INQUIRY,
        idempotency_key="inquiry:void",
        payload={"status": "1", "refunded_amount": "150000"},
    )
    voided = engine.get(pid)
    assert (voided.state, voided.refunded_amount) == ("voided", "150000")
    with pytest.raises(TransitionNotAllowed):  # voided takes no further request
        request_refund(engine, pid)


def test_a_later_odd_total_keeps_the_stored_one(engine: Engine) -> None:
    pid = start_ovo(engine)
    drive(engine, pid, TO_PAID)
    refund(engine, pid, "50000", "inquiry:refund:50000")
    refund(engine, pid, "not-digits", "inquiry:refund:odd")  # the instance has a total already
    assert engine.get(pid).refunded_amount == "50000"
