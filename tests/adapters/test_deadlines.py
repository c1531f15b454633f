"""Passed deadlines: the timer's status checks and other deadline events, on both databases."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select

from adapters.errors import CancelNotAllowed
from adapters.nicepay.messages import CartItem
from adapters.reconcile.deadlines import run_due
from adapters.service import PaymentOrder, PaymentService
from fsm.clock import ManualClock
from fsm.engine import Engine
from fsm.errors import ProviderUnavailable
from fsm.flows import FLOWS
from fsm.store.sql import SqlStore
from fsm.store.tables import INSTANCE_TABLE
from tests.adapters.nicepay_fake import (
    TXID,
    FakeNicepay,
    billing,
    harness,
    ok,
    refused,
    registered,
)


def _order(reference_no: str = "ORD-1", amount: str = "12000") -> PaymentOrder:
    return PaymentOrder(
        wallet="ovo",
        reference_no=reference_no,
        amount=amount,
        goods_name="Tea",
        billing=billing(),
        cart=(
            CartItem(goods_name="Tea", goods_amt="5000", goods_quantity="2"),
            CartItem(goods_name="Shipping", goods_amt="2000"),
        ),
        user_ip="127.0.0.1",
    )


def _inquiry(status: str) -> httpx.Response:
    return ok(tXid=TXID, referenceNo="ORD-1", amt="12000", status=status)


def _service(store: SqlStore, *replies: httpx.Response) -> tuple[PaymentService, FakeNicepay]:
    rig = harness(*replies)
    engine = Engine(store, flows=FLOWS, clock=rig.clock)
    service = PaymentService(
        engine,
        rig.client,
        notification_url="http://127.0.0.1/nicepay/notification",
        callback_url="http://127.0.0.1/nicepay/callback",
    )
    return service, rig.fake


def _advance(service: PaymentService, seconds: float) -> None:
    clock = service.engine.clock
    assert isinstance(clock, ManualClock)
    clock.advance(timedelta(seconds=seconds))


def test_nothing_is_due_before_the_deadline(store: SqlStore) -> None:
    service, fake = _service(store, registered())
    service.start_payment(_order())
    assert run_due(service) == []
    assert len(fake.requests) == 1  # only the registration


def test_an_unanswered_ovo_push_is_checked_after_55_seconds(store: SqlStore) -> None:
    service, _fake = _service(store, registered(), _inquiry("5"))
    payment = service.start_payment(_order()).instance
    assert service.engine.get(payment.id).state == "awaiting_approval"
    _advance(service, 54)
    assert run_due(service) == []
    _advance(service, 2)
    (run,) = run_due(service)
    assert (run.event, run.before, run.after, run.error) == (
        "check_status",
        "awaiting_approval",
        "expired",
        None,
    )
    steps = [(r.event, r.actor) for r in service.engine.history(payment.id)][-2:]
    assert steps == [("check_status", "timer"), ("expire_payment", "status_inquiry")]
    assert service.engine.get(payment.id).deadline_at is None  # final: nothing more is due


def test_an_unknown_code_is_checked_again_when_the_check_deadline_passes(store: SqlStore) -> None:
    service, _fake = _service(store, registered(), _inquiry("7"), _inquiry("0"))
    payment = service.start_payment(_order()).instance
    _advance(service, 56)
    (first,) = run_due(service)
    assert first.after == "status_check_requested"  # "7" changed nothing
    reasons = [r.reason.value for r in service.engine.rejections(payment.id)]
    assert reasons == ["unknown_status"]
    assert run_due(service) == []  # not due again at once
    _advance(service, 61)
    (second,) = run_due(service)
    assert (second.before, second.after) == ("status_check_requested", "paid")
    checks = [r.actor for r in service.engine.history(payment.id) if r.event == "check_status"]
    assert checks == ["timer", "timer"]  # the retry is on the log, and it moved the deadline


def test_a_failed_inquiry_is_reported_and_retried_on_the_next_pass(store: SqlStore) -> None:
    service, _fake = _service(store, registered(), *[httpx.Response(503)] * 3, _inquiry("0"))
    payment = service.start_payment(_order()).instance
    _advance(service, 56)
    (run,) = run_due(service)
    assert run.error is not None
    assert run.error.startswith("ProviderUnavailable")
    assert service.engine.get(payment.id).state == "status_check_requested"
    _advance(service, 61)
    (retry,) = run_due(service)
    assert (retry.after, retry.error) == ("paid", None)


def test_other_deadline_events_are_fired_by_the_timer(store: SqlStore) -> None:
    service, _fake = _service(store, registered(), _inquiry("0"))
    payment = service.start_payment(_order()).instance
    service.check_status(payment.id)
    assert service.engine.get(payment.id).state == "paid"
    _advance(service, 10 * 60 + 1)  # paid's deadline: confirm the order to the customer
    (run,) = run_due(service)
    assert (run.event, run.after) == ("confirm_order", "order_confirmed")
    assert service.engine.history(payment.id)[-1].actor == "timer"


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
    fields = _order().model_dump()
    fields[field] = value
    with pytest.raises(ValidationError):
        PaymentOrder.model_validate(fields)
    assert store.list_instances() == []


def test_a_cancel_is_followed_by_the_inquiry_that_moves_the_payment(store: SqlStore) -> None:
    cancelled = ok(tXid=TXID, referenceNo="ORD-1", amt="12000", canceltXid="C1")
    service, fake = _service(store, registered(), _inquiry("0"), cancelled, _inquiry("1"))
    payment = service.start_payment(_order()).instance
    service.check_status(payment.id)
    refund = service.cancel(payment.id, request_id="rf-1", reason="out of stock")
    assert (refund.state, refund.refunded_amount, refund.status) == ("voided", "12000", "succeeded")
    cancel_body = fake.bodies()[2]
    assert (cancel_body["cancelType"], cancel_body["amt"]) == ("1", "12000")
    assert service.engine.history(payment.id)[-1].actor == "status_inquiry"


def test_a_refused_cancel_moves_no_money(store: SqlStore) -> None:
    service, fake = _service(store, registered(), _inquiry("0"), refused("9314", "cannot cancel"))
    payment = service.start_payment(_order()).instance
    service.check_status(payment.id)
    with pytest.raises(CancelNotAllowed):  # OVO cancels in full only: refused here, not sent
        service.cancel(payment.id, request_id="rf-1", amount="5000")
    assert len(fake.bodies()) == 2
    refund = service.cancel(payment.id, request_id="rf-2")
    assert (refund.status, refund.provider_code) == ("declined", "9314")
    after = service.engine.get(payment.id)
    assert (after.state, after.refunded_amount) == ("paid", None)
    assert fake.bodies()[2]["cancelType"] == "1"


@pytest.mark.parametrize(
    "answer",
    [
        ok(tXid="IONPAYTEST05202502010030009999", referenceNo="ORD-1", amt="12000", status="0"),
        ok(tXid=TXID, referenceNo="ORD-2", amt="12000", status="0"),
        ok(tXid=TXID, referenceNo="ORD-1", amt="99000", status="0"),
    ],
)
def test_an_answer_about_another_transaction_moves_nothing(
    store: SqlStore, answer: httpx.Response
) -> None:
    service, _fake = _service(store, registered(), answer)
    payment = service.start_payment(_order()).instance
    checked = service.check_status(payment.id)
    assert checked.state == "status_check_requested"
    (refusal,) = service.engine.rejections(payment.id)
    assert (refusal.reason.value, refusal.event) == ("unverified", "report_status")
    assert "inquiry answer has" in refusal.detail


def test_a_registration_timeout_records_what_failed(store: SqlStore) -> None:
    service, _fake = _service(store, httpx.Response(503), httpx.Response(503))
    with pytest.raises(ProviderUnavailable):
        service.start_payment(_order())
    (payment,) = store.list_instances()
    assert payment.state == "registration_failed"
    payload = service.engine.history(payment.id)[-1].payload
    assert (payload["error"], payload["retryable"]) == ("ProviderUnavailable", True)


def _claimed_by(store: SqlStore, payment_id: str) -> str | None:
    query = select(INSTANCE_TABLE.c.claimed_by).where(INSTANCE_TABLE.c.id == payment_id)
    with store.engine.connect() as conn:
        owner: str | None = conn.execute(query).scalar_one()
    return owner


def test_a_payment_another_reconciler_holds_waits_for_its_lease(store: SqlStore) -> None:
    service, fake = _service(store, registered(), _inquiry("0"))
    payment = service.start_payment(_order()).instance
    _advance(service, 56)
    lease = timedelta(minutes=1)
    assert store.claim(payment.id, owner="other", now=service.engine.clock.now(), lease=lease)
    assert run_due(service, owner="mine") == []
    assert len(fake.requests) == 1  # no inquiry while the other holds it
    _advance(service, lease.total_seconds() + 1)  # the other stopped: its claim lapses
    (run,) = run_due(service, owner="mine")
    assert run.after == "paid"
    assert _claimed_by(store, payment.id) is None


def test_a_failed_deadline_action_still_gives_its_claim_back(store: SqlStore) -> None:
    service, _fake = _service(store, registered(), *[httpx.Response(503)] * 3)
    payment = service.start_payment(_order()).instance
    _advance(service, 56)
    (run,) = run_due(service, owner="mine")
    assert run.error is not None
    assert _claimed_by(store, payment.id) is None
