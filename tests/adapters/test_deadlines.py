"""Passed deadlines: the timer's status checks and other deadline events, on both databases.

NICEPAY is the simulator in-process, on the service's clock: the tests settle its transactions
(``sim.approve``, ``sim.expire``) and arm the answers it would not give of its own accord.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from adapters.errors import CancelNotAllowed, ProviderUnavailable
from adapters.nicepay.client import CANCEL_PATH, INQUIRY_PATH, REGISTRATION_PATH
from adapters.reconcile.deadlines import run_due
from adapters.service import PaymentOrder, PaymentService
from fsm.clock import ManualClock
from fsm.definition import FlowCatalog
from fsm.engine import Engine
from fsm.flows import FLOWS
from fsm.store.sql import SqlStore
from fsm.store.tables import INSTANCE_TABLE
from tests.adapters.mock_nicepay import Line, Nicepay, harness
from tests.adapters.values import payment_order, refusal
from tests.flow_versions import FIRST


def _service(
    store: SqlStore, nicepay: Nicepay, flows: FlowCatalog = FLOWS
) -> tuple[PaymentService, Line]:
    rig = harness(nicepay)
    engine = Engine(store, flows=flows, clock=rig.clock)
    service = PaymentService(
        engine,
        rig.client,
        store=store,
        notification_url="http://127.0.0.1/nicepay/notification",
        callback_url="http://127.0.0.1/nicepay/callback",
    )
    return service, rig.line


def _pushed(
    store: SqlStore, nicepay: Nicepay, *, paid: bool = False, flows: FlowCatalog = FLOWS
) -> tuple[PaymentService, Line, str, str]:
    """An OVO payment pushed to the customer's app (paid at NICEPAY, not yet asked, if ``paid``).

    Returns the service, the line its calls go down, the payment's id and NICEPAY's tXid.
    """
    service, line = _service(store, nicepay, flows)
    payment = service.start_payment(payment_order("ovo")).instance
    tx_id = nicepay.sim.transaction(reference_no="ORD-1").tx_id
    if paid:
        nicepay.sim.approve(tx_id)
    return service, line, payment.id, tx_id


def _advance(service: PaymentService, seconds: float) -> None:
    clock = service.engine.clock
    assert isinstance(clock, ManualClock)
    clock.advance(timedelta(seconds=seconds))


def test_nothing_is_due_before_the_deadline(store: SqlStore, nicepay: Nicepay) -> None:
    service, line = _service(store, nicepay)
    service.start_payment(payment_order("ovo"))
    assert run_due(service) == []
    assert len(line.requests) == 1  # only the registration


def test_an_unanswered_ovo_push_is_checked_after_55_seconds(
    store: SqlStore, nicepay: Nicepay
) -> None:
    service, _line, payment_id, tx_id = _pushed(store, nicepay)
    assert service.engine.get(payment_id).state == "awaiting_approval"
    _advance(service, 54)
    assert run_due(service) == []
    _advance(service, 2)
    nicepay.sim.expire(tx_id)  # the customer never answered the push
    (run,) = run_due(service)
    assert (run.event, run.before, run.after, run.error) == (
        "check_status",
        "awaiting_approval",
        "expired",
        None,
    )
    steps = [(r.event, r.actor) for r in service.engine.history(payment_id)][-2:]
    assert steps == [("check_status", "timer"), ("expire_payment", "status_inquiry")]
    assert service.engine.get(payment_id).deadline_at is None  # final: nothing more is due


def test_an_unknown_code_is_checked_again_when_the_check_deadline_passes(
    store: SqlStore, nicepay: Nicepay
) -> None:
    service, _line, payment_id, tx_id = _pushed(store, nicepay)
    nicepay.sim.faults.response(INQUIRY_PATH, fields={"status": "7"})
    _advance(service, 56)
    (first,) = run_due(service)
    assert first.after == "status_check_requested"  # "7" changed nothing
    reasons = [r.reason.value for r in service.engine.rejections(payment_id)]
    assert reasons == ["unknown_status"]
    assert run_due(service) == []  # not due again at once
    nicepay.sim.approve(tx_id)
    _advance(service, 61)
    (second,) = run_due(service)
    assert (second.before, second.after) == ("status_check_requested", "paid")
    checks = [r.actor for r in service.engine.history(payment_id) if r.event == "check_status"]
    assert checks == ["timer", "timer"]  # the retry is on the log, and it moved the deadline


def test_a_failed_inquiry_is_reported_and_retried_on_the_next_pass(
    store: SqlStore, nicepay: Nicepay
) -> None:
    service, _line, payment_id, _tx_id = _pushed(store, nicepay, paid=True)
    nicepay.sim.faults.response(INQUIRY_PATH, status=503, times=3)  # every try of the first pass
    _advance(service, 56)
    (run,) = run_due(service)
    assert run.error is not None
    assert run.error.startswith("ProviderUnavailable")
    assert service.engine.get(payment_id).state == "status_check_requested"
    _advance(service, 61)
    (retry,) = run_due(service)
    assert (retry.after, retry.error) == ("paid", None)


def test_other_deadline_events_are_fired_by_the_timer(store: SqlStore, nicepay: Nicepay) -> None:
    # version 1's paid confirmed the order on a timer; from version 2 the merchant does
    service, _line, payment_id, _tx_id = _pushed(store, nicepay, paid=True, flows=FIRST)
    service.check_status(payment_id)
    assert service.engine.get(payment_id).state == "paid"
    _advance(service, 10 * 60 + 1)  # paid's deadline: confirm the order to the customer
    (run,) = run_due(service)
    assert (run.event, run.after) == ("confirm_order", "order_confirmed")
    assert service.engine.history(payment_id)[-1].actor == "timer"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", "12000.00"),
        ("amount", "13000"),  # the cart adds up to 12000
        ("reference_no", "R" * 41),
        ("user_ip", "2001:db8::1:2:3:4"),
    ],
)
def test_a_bad_order_is_refused_before_anything_is_stored(
    store: SqlStore, field: str, value: str
) -> None:
    fields = payment_order("ovo").model_dump()
    fields[field] = value
    with pytest.raises(ValidationError):
        PaymentOrder.model_validate(fields)
    assert store.list_instances() == []


def test_a_cancel_is_followed_by_the_inquiry_that_moves_the_payment(
    store: SqlStore, nicepay: Nicepay
) -> None:
    service, line, payment_id, tx_id = _pushed(store, nicepay, paid=True)
    service.check_status(payment_id)
    refund = service.cancel(payment_id, request_id="rf-1", reason="out of stock")
    assert (refund.state, refund.refunded_amount, refund.status) == ("voided", "12000", "succeeded")
    [cancel_body] = [body for body in line.bodies() if "cancelType" in body]
    assert (cancel_body["cancelType"], cancel_body["amt"]) == ("1", "12000")
    assert nicepay.sim.transaction(tx_id).state == "voided"  # OVO voids on the day of payment
    assert service.engine.history(payment_id)[-1].actor == "status_inquiry"


def test_a_refused_cancel_moves_no_money(store: SqlStore, nicepay: Nicepay) -> None:
    service, line, payment_id, _tx_id = _pushed(store, nicepay, paid=True)
    service.check_status(payment_id)
    with pytest.raises(CancelNotAllowed):  # OVO cancels in full only: refused here, not sent
        service.cancel(payment_id, request_id="rf-1", amount="5000")
    assert len(line.bodies()) == 2
    nicepay.sim.faults.response(CANCEL_PATH, body=refusal("9314", "cannot cancel"))
    refund = service.cancel(payment_id, request_id="rf-2")
    assert (refund.status, refund.provider_code) == ("declined", "9314")
    after = service.engine.get(payment_id)
    assert (after.state, after.refunded_amount) == ("paid", None)
    [cancel_body] = [body for body in line.bodies() if "cancelType" in body]
    assert cancel_body["cancelType"] == "1"


@pytest.mark.parametrize(
    "other",
    [
        {"tXid": "IONPAYTEST05202502010030009999"},
        {"referenceNo": "ORD-2"},
        {"amt": "99000"},
    ],
)
def test_an_answer_about_another_transaction_moves_nothing(
    store: SqlStore, nicepay: Nicepay, other: dict[str, Any]
) -> None:
    service, _line, payment_id, _tx_id = _pushed(store, nicepay)
    nicepay.sim.faults.response(INQUIRY_PATH, fields={**other, "status": "0"})
    checked = service.check_status(payment_id)
    assert checked.state == "status_check_requested"
    (refused,) = service.engine.rejections(payment_id)
    assert (refused.reason.value, refused.event) == ("unverified", "report_status")
    assert "inquiry answer has" in refused.detail


def test_a_registration_timeout_records_what_failed(store: SqlStore, nicepay: Nicepay) -> None:
    service, _line = _service(store, nicepay)
    nicepay.sim.faults.response(REGISTRATION_PATH, status=503, times=2)
    with pytest.raises(ProviderUnavailable):
        service.start_payment(payment_order("ovo"))
    (payment,) = store.list_instances()
    assert payment.state == "registration_failed"
    payload = service.engine.history(payment.id)[-1].payload
    assert (payload["error"], payload["retryable"]) == ("ProviderUnavailable", True)


def _claimed_by(store: SqlStore, payment_id: str) -> str | None:
    query = select(INSTANCE_TABLE.c.claimed_by).where(INSTANCE_TABLE.c.id == payment_id)
    with store.engine.connect() as conn:
        owner: str | None = conn.execute(query).scalar_one()
    return owner


def test_a_payment_another_reconciler_holds_waits_for_its_lease(
    store: SqlStore, nicepay: Nicepay
) -> None:
    service, line, payment_id, _tx_id = _pushed(store, nicepay, paid=True)
    _advance(service, 56)
    lease = timedelta(minutes=1)
    assert service.leases.claim(
        payment_id, owner="other", now=service.engine.clock.now(), lease=lease
    )
    assert run_due(service, owner="mine") == []
    assert len(line.requests) == 1  # no inquiry while the other holds it
    _advance(service, lease.total_seconds() + 1)  # the other stopped: its claim lapses
    (run,) = run_due(service, owner="mine")
    assert run.after == "paid"
    assert _claimed_by(store, payment_id) is None


def test_a_failed_deadline_action_still_gives_its_claim_back(
    store: SqlStore, nicepay: Nicepay
) -> None:
    service, _line, payment_id, _tx_id = _pushed(store, nicepay)
    nicepay.sim.faults.response(INQUIRY_PATH, status=503, times=3)
    _advance(service, 56)
    (run,) = run_due(service, owner="mine")
    assert run.error is not None
    assert _claimed_by(store, payment_id) is None
