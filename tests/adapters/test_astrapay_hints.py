"""AstraPay payments cannot be stranded: a returned tXid is a hint until NICEPAY confirms it.

AstraPay's payment is a browser submit, so the server may first hear of its tXid from the
unauthenticated return. Whatever came first (a forged return, a genuine one whose inquiry failed),
the verified notification and the genuine return still get through, and later status checks
(merchant, timer, reconciler) ask about the recorded hints until NICEPAY confirms one. The service
runs on a real store (SQLite and PostgreSQL) and the simulator in-process, which keeps its
transactions.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urlencode

import pytest

from adapters.inbound.handler import NotificationHandler
from adapters.inbound.parsing import InboundRequest
from adapters.nicepay.client import INQUIRY_PATH
from adapters.reconcile.deadlines import run_due
from adapters.reconcile.hints import HINTS_ASKED, recorded_hints
from adapters.reconcile.recovery import Reconciler
from fsm.definition import Actor
from fsm.model import Instance
from tests.adapters.mock_nicepay import ServiceRig, linked_account, submit_at_nicepay
from tests.adapters.mock_nicepay import inquiries_sent as inquiries
from tests.adapters.pages import shown_outcome
from tests.adapters.values import AMOUNT, astrapay_notification, new_tx_id, payment_order


def unavailable(rig: ServiceRig) -> None:
    """NICEPAY's next inquiry fails: both of the rig's client's tries answer 503."""
    rig.sim.faults.response(INQUIRY_PATH, status=503, body=b"busy", times=2)


def submitted(rig: ServiceRig, reference_no: str = "ORD-A") -> Instance:
    """An AstraPay payment whose linkInitiate form the browser submitted (no tXid here yet)."""
    link = linked_account(rig, f"LNK-{reference_no}")
    order = payment_order("astrapay", reference_no, link_id=link.id)
    started = rig.service.start_payment(order, payment_id=f"pay-{reference_no}")
    submit_at_nicepay(rig, started)
    payment = started.instance
    assert (payment.state, payment.tx_id) == ("link_initiate_submitted", None)
    return payment


def at_nicepay(rig: ServiceRig, payment: Instance, status: str = "0") -> str:
    """NICEPAY's transaction for the payment, paid (or left unpaid: ``3``); returns its tXid."""
    tx_id = rig.tx_id(payment.reference_no or "")
    if status == "0":
        rig.sim.approve(tx_id)
    assert rig.sim.transaction(tx_id).status == status
    return tx_id


def returned(payment: Instance, tx_id: str) -> InboundRequest:
    """The browser's return to callBackUrl naming ``tx_id``: anybody can send it."""
    params = {"resultCd": "0000", "tXid": tx_id, "referenceNo": payment.reference_no or ""}
    return InboundRequest(query=urlencode({**params, "amt": AMOUNT, "mitraCd": "ASTR"}))


def stranded_by_a_failed_inquiry(rig: ServiceRig, handler: NotificationHandler) -> Instance:
    """The genuine return arrived, its inquiry failed, and the notification never came."""
    payment = submitted(rig)
    tx_id = at_nicepay(rig, payment)
    unavailable(rig)
    assert handler.handle_callback(returned(payment, tx_id)).status == 200
    stranded = rig.engine.get(payment.id)
    assert (stranded.state, stranded.tx_id) == ("status_check_requested", None)
    assert recorded_hints(rig.engine, payment.id) == [tx_id]
    return stranded


def test_a_forged_return_first_does_not_shut_out_the_notification(
    rig: ServiceRig, handler: NotificationHandler
) -> None:
    payment = submitted(rig)
    bogus = new_tx_id()
    assert handler.handle_callback(returned(payment, bogus)).status == 200
    waiting = rig.engine.get(payment.id)
    assert (waiting.state, waiting.tx_id) == ("status_check_requested", None)  # nothing bound

    tx_id = at_nicepay(rig, payment)
    assert handler.handle_notification(astrapay_notification(payment, tx_id)).status == 200
    paid = rig.engine.get(payment.id)
    assert (paid.state, paid.tx_id) == ("paid", tx_id)
    received = [r for r in rig.engine.history(payment.id) if r.event == "receive_notification"]
    assert [r.source for r in received] == ["status_check_requested"]


def test_a_forged_return_first_does_not_shut_out_the_genuine_return(
    rig: ServiceRig, handler: NotificationHandler
) -> None:
    payment = submitted(rig)
    assert handler.handle_callback(returned(payment, new_tx_id())).status == 200
    tx_id = at_nicepay(rig, payment)
    # In the forged return's throttle slot the genuine one asks nothing, but keeps its tXid.
    reply = handler.handle_callback(returned(payment, tx_id))
    assert (reply.status, shown_outcome(reply.html)) == (200, "pending")
    assert rig.engine.get(payment.id).state == "status_check_requested"
    assert tx_id in recorded_hints(rig.engine, payment.id)
    assert _timer(rig) == "paid"
    assert rig.engine.get(payment.id).tx_id == tx_id

    # In a later slot the genuine return is asked about at once (answered before it is asked).
    later = submitted(rig, "ORD-C")
    handler.handle_callback(returned(later, new_tx_id()))
    rig.clock.advance(timedelta(seconds=30))
    reply = handler.handle_callback(returned(later, at_nicepay(rig, later)))
    assert (reply.status, shown_outcome(reply.html)) == (200, "pending")
    assert rig.engine.get(later.id).state == "paid"


def test_a_notification_while_a_check_waits_binds_its_verified_txid(
    rig: ServiceRig, handler: NotificationHandler
) -> None:
    payment = stranded_by_a_failed_inquiry(rig, handler)
    tx_id = recorded_hints(rig.engine, payment.id)[0]
    unavailable(rig)  # its inquiry fails too
    assert handler.handle_notification(astrapay_notification(payment, tx_id)).status == 200
    bound = rig.engine.get(payment.id)
    assert (bound.state, bound.tx_id) == ("status_check_requested", tx_id)
    assert rig.service.check_status(payment.id).state == "paid"


def _merchant(rig: ServiceRig) -> str:
    return rig.service.check_status("pay-ORD-A").state


def _timer(rig: ServiceRig) -> str:
    (run,) = run_due(rig.service, now=rig.clock.now() + timedelta(minutes=2))
    return run.after


def _reconciler(rig: ServiceRig) -> str:
    passed = Reconciler(rig.service).run_once(rig.clock.now() + timedelta(minutes=2))
    assert not passed.failed
    return passed.deadlines[0].after


@pytest.mark.parametrize("check", [_merchant, _timer, _reconciler], ids=lambda f: f.__name__[1:])
def test_a_genuine_return_whose_inquiry_failed_is_settled_by_a_later_check(
    rig: ServiceRig, handler: NotificationHandler, check: Callable[[ServiceRig], str]
) -> None:
    payment = stranded_by_a_failed_inquiry(rig, handler)
    assert check(rig) == "paid"
    paid = rig.engine.get(payment.id)
    assert paid.tx_id == recorded_hints(rig.engine, payment.id)[0]
    confirmed = rig.engine.history(payment.id)[-1]
    assert (confirmed.event, confirmed.actor) == ("confirm_payment", Actor.STATUS_INQUIRY)


def test_forged_hints_cost_an_inquiry_each_and_never_crowd_out_the_genuine_one(
    rig: ServiceRig, handler: NotificationHandler
) -> None:
    payment = stranded_by_a_failed_inquiry(rig, handler)
    genuine = recorded_hints(rig.engine, payment.id)[0]
    forged = [new_tx_id() for _ in range(HINTS_ASKED + 1)]
    before = inquiries(rig)
    for tx_id in forged:  # each one's own inquiry fails too, so none is disproved yet
        rig.clock.advance(timedelta(seconds=30))  # a throttle slot each
        unavailable(rig)
        assert handler.handle_callback(returned(payment, tx_id)).status == 200
    assert recorded_hints(rig.engine, payment.id) == [*reversed(forged), genuine]

    for _ in range(2):  # the deadline's status checks, asking about the recorded hints
        if rig.engine.get(payment.id).state != "paid":
            rig.service.check_status(payment.id)
    assert rig.engine.get(payment.id).tx_id == genuine
    assert rig.engine.get(payment.id).state == "paid"
    # No forged hint was asked about more than once on top of the returns' own inquiries: the
    # genuine one, asked before, goes first among the recorded ones.
    assert inquiries(rig) - before <= len(forged) + HINTS_ASKED + 2

    sent = inquiries(rig)  # a forged return repeated after NICEPAY refused it costs nothing
    handler.handle_callback(returned(payment, forged[0]))
    assert inquiries(rig) == sent


def test_a_return_naming_another_orders_transaction_binds_nothing(
    rig: ServiceRig, handler: NotificationHandler
) -> None:
    payment = submitted(rig)
    other = submitted(rig, "ORD-B")
    others_tx = at_nicepay(rig, other)
    assert handler.handle_callback(returned(payment, others_tx)).status == 200
    assert rig.engine.get(payment.id).tx_id is None
    (intent,) = rig.service.calls.of_instance(payment.id)
    assert (intent.tx_id, intent.outcome) == (others_tx, "refused:9010")
    sent = inquiries(rig)
    assert rig.service.check_status(payment.id).state == "status_check_requested"
    assert inquiries(rig) == sent  # disproved: never asked again


def test_a_return_of_an_unpaid_transaction_binds_it_and_settles_nothing(
    rig: ServiceRig, handler: NotificationHandler
) -> None:
    payment = submitted(rig)
    tx_id = at_nicepay(rig, payment, status="3")
    reply = handler.handle_callback(returned(payment, tx_id))
    assert shown_outcome(reply.html) == "pending"
    assert rig.engine.get(payment.id).state == "customer_paying"
    assert rig.engine.get(payment.id).tx_id == tx_id  # NICEPAY agreed on reference and amount
    sent = inquiries(rig)  # once bound, a return naming another tXid does not match it
    assert handler.handle_callback(returned(payment, new_tx_id())).status == 404
    assert inquiries(rig) == sent
    assert rig.engine.get(payment.id).state == "customer_paying"


def test_a_timer_check_with_nothing_to_ask_still_moves_its_deadline(
    rig: ServiceRig, handler: NotificationHandler
) -> None:
    payment = submitted(rig)
    handler.handle_callback(returned(payment, new_tx_id()))  # forged, and refused by NICEPAY
    later = rig.clock.now() + timedelta(minutes=2)
    rig.clock.advance(timedelta(minutes=2))
    sent = inquiries(rig)
    (run,) = run_due(rig.service, now=later)
    assert (run.event, run.after, run.error) == ("check_status", "status_check_requested", None)
    assert inquiries(rig) == sent
    assert (rig.engine.get(payment.id).deadline_at or later) > later  # not due again at once
    assert run_due(rig.service, now=later) == []
