"""Paying with a linked AstraPay account (``linkInitiate.do`` with the stored mandate).

The first step's guard refuses to start without a mandate. As for every wallet, the callback and
the notification only lead to a status check; AstraPay's inquiry code ``8`` means a refund after a
payment and a failure before one, which the adapter's table decides before it fires.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from fsm.definition import Actor, Deadline, FlowDefinition, StateKind, StateSpec, transition
from fsm.flows._common import HAS_MANDATE, Wallet, refund_requests


class AstrapayPaymentState(StrEnum):
    """States of an AstraPay payment."""

    CHECKOUT_REQUESTED = "checkout_requested"
    CHECKOUT_ABANDONED = "checkout_abandoned"
    LINK_INITIATE_SUBMITTED = "link_initiate_submitted"
    INITIATE_FAILED = "initiate_failed"
    PAYMENT_PAGE_RECEIVED = "payment_page_received"
    CUSTOMER_REDIRECTED = "customer_redirected"
    CUSTOMER_PAYING = "customer_paying"
    CALLBACK_RECEIVED = "callback_received"
    NOTIFICATION_RECEIVED = "notification_received"
    STATUS_CHECK_REQUESTED = "status_check_requested"
    PAID = "paid"
    CUSTOMER_UPDATED = "customer_updated"
    FAILED = "failed"
    EXPIRED = "expired"
    REFUNDED = "refunded"


class AstrapayPaymentEvent(StrEnum):
    """Events of an AstraPay payment."""

    SUBMIT_LINK_INITIATE = "submit_link_initiate"
    ABANDON_CHECKOUT = "abandon_checkout"
    RECEIVE_PAYMENT_PAGE = "receive_payment_page"
    FAIL_INITIATE = "fail_initiate"
    REDIRECT_CUSTOMER = "redirect_customer"
    RECEIVE_CALLBACK = "receive_callback"
    RECEIVE_NOTIFICATION = "receive_notification"
    CHECK_STATUS = "check_status"
    REPORT_PENDING = "report_pending"
    CONFIRM_PAYMENT = "confirm_payment"
    FAIL_PAYMENT = "fail_payment"
    EXPIRE_PAYMENT = "expire_payment"
    REFUND_PAYMENT = "refund_payment"
    UPDATE_CUSTOMER = "update_customer"
    REQUEST_REFUND = "request_refund"


S, E, A = AstrapayPaymentState, AstrapayPaymentEvent, Actor
WAITING = (S.CUSTOMER_REDIRECTED, S.CUSTOMER_PAYING)
# The browser submits linkInitiate, so the server may hear nothing until the callback or the
# notification: both are accepted from the submission on.
BROWSER_STEPS = (S.LINK_INITIATE_SUBMITTED, S.PAYMENT_PAGE_RECEIVED, *WAITING)
REFUNDABLE = (S.PAID, S.CUSTOMER_UPDATED, S.REFUNDED)
"""Where a (further) refund may be requested; the inquiry's refund binds the total."""


def _state(
    name: AstrapayPaymentState,
    kind: StateKind,
    after: timedelta,
    on_expiry: AstrapayPaymentEvent,
    description: str,
) -> StateSpec:
    return StateSpec(name, kind, deadline=Deadline(after, on_expiry), description=description)


ASTRAPAY_PAYMENT = FlowDefinition(
    name="astrapay_payment",
    description="AstraPay payment with a linked account's mandate (linkInitiate.do)",
    wallets=(Wallet.ASTRAPAY,),
    initial=S.CHECKOUT_REQUESTED,
    states=(
        _state(
            S.CHECKOUT_REQUESTED,
            StateKind.START,
            timedelta(minutes=15),
            E.ABANDON_CHECKOUT,
            "the customer chose AstraPay",
        ),
        _state(
            S.LINK_INITIATE_SUBMITTED,
            StateKind.WAITING_CUSTOMER,
            timedelta(minutes=20),
            E.FAIL_INITIATE,
            "linkInitiate form with the mandate handed to the browser",
        ),
        _state(
            S.PAYMENT_PAGE_RECEIVED,
            StateKind.IN_PROGRESS,
            timedelta(minutes=2),
            E.CHECK_STATUS,
            "NICEPAY answered with AstraPay's verification page",
        ),
        _state(
            S.CUSTOMER_REDIRECTED,
            StateKind.WAITING_CUSTOMER,
            timedelta(minutes=15),
            E.CHECK_STATUS,
            "customer on AstraPay's verification page",
        ),
        _state(
            S.CUSTOMER_PAYING,
            StateKind.WAITING_CUSTOMER,
            timedelta(minutes=1),
            E.CHECK_STATUS,
            "inquiry says unpaid (3): poll again",
        ),
        _state(
            S.CALLBACK_RECEIVED,
            StateKind.IN_PROGRESS,
            timedelta(seconds=30),
            E.CHECK_STATUS,
            "browser returned; a hint only",
        ),
        _state(
            S.NOTIFICATION_RECEIVED,
            StateKind.IN_PROGRESS,
            timedelta(seconds=30),
            E.CHECK_STATUS,
            "verified notification; confirm by inquiry",
        ),
        _state(
            S.STATUS_CHECK_REQUESTED,
            StateKind.WAITING_PROVIDER,
            timedelta(minutes=1),
            E.CHECK_STATUS,
            "status inquiry under way",
        ),
        StateSpec(
            S.PAID,
            StateKind.SUCCEEDED,
            settlement=True,
            deadline=Deadline(timedelta(minutes=10), E.UPDATE_CUSTOMER),
            description="inquiry status 0; customer not yet told",
        ),
        StateSpec(S.CUSTOMER_UPDATED, StateKind.SUCCEEDED, final=True),
        StateSpec(S.CHECKOUT_ABANDONED, StateKind.FAILED, final=True),
        StateSpec(S.INITIATE_FAILED, StateKind.FAILED, final=True),
        StateSpec(S.FAILED, StateKind.FAILED, final=True, settlement=True),
        StateSpec(S.EXPIRED, StateKind.FAILED, final=True, settlement=True),
        StateSpec(S.REFUNDED, StateKind.REVERSED, final=True, settlement=True),
    ),
    transitions=(
        transition(
            E.SUBMIT_LINK_INITIATE,
            S.CHECKOUT_REQUESTED,
            S.LINK_INITIATE_SUBMITTED,
            A.MERCHANT,
            guard=HAS_MANDATE,
        ),
        transition(
            E.ABANDON_CHECKOUT,
            S.CHECKOUT_REQUESTED,
            S.CHECKOUT_ABANDONED,
            A.MERCHANT,
            A.TIMER,
            A.OPERATOR,
        ),
        transition(
            E.RECEIVE_PAYMENT_PAGE,
            S.LINK_INITIATE_SUBMITTED,
            S.PAYMENT_PAGE_RECEIVED,
            A.NICEPAY_RESPONSE,
            A.MERCHANT,
        ),
        transition(
            E.FAIL_INITIATE,
            S.LINK_INITIATE_SUBMITTED,
            S.INITIATE_FAILED,
            A.NICEPAY_RESPONSE,
            A.TIMER,
            A.OPERATOR,
        ),
        transition(E.REDIRECT_CUSTOMER, S.PAYMENT_PAGE_RECEIVED, S.CUSTOMER_REDIRECTED, A.MERCHANT),
        transition(E.RECEIVE_CALLBACK, BROWSER_STEPS, S.CALLBACK_RECEIVED, A.BROWSER_CALLBACK),
        transition(
            E.RECEIVE_NOTIFICATION,
            (*BROWSER_STEPS, S.CALLBACK_RECEIVED),
            S.NOTIFICATION_RECEIVED,
            A.NICEPAY_NOTIFICATION,
            binds=("tx_id",),
        ),
        transition(
            E.CHECK_STATUS,
            (
                S.PAYMENT_PAGE_RECEIVED,
                *WAITING,
                S.CALLBACK_RECEIVED,
                S.NOTIFICATION_RECEIVED,
                S.STATUS_CHECK_REQUESTED,
            ),
            S.STATUS_CHECK_REQUESTED,
            A.MERCHANT,
            A.TIMER,
            A.OPERATOR,
        ),
        # An inquiry answer binds the tXid it confirmed: without a notification, the payment
        # knows it only from the browser's unauthenticated return until NICEPAY agrees.
        transition(
            E.REPORT_PENDING,
            S.STATUS_CHECK_REQUESTED,
            S.CUSTOMER_PAYING,
            A.STATUS_INQUIRY,
            binds=("tx_id",),
        ),
        transition(
            E.CONFIRM_PAYMENT,
            S.STATUS_CHECK_REQUESTED,
            S.PAID,
            A.STATUS_INQUIRY,
            A.OPERATOR,
            binds=("tx_id",),
        ),
        transition(
            E.FAIL_PAYMENT,
            S.STATUS_CHECK_REQUESTED,
            S.FAILED,
            A.STATUS_INQUIRY,
            A.OPERATOR,
            binds=("tx_id",),
        ),
        transition(
            E.EXPIRE_PAYMENT,
            S.STATUS_CHECK_REQUESTED,
            S.EXPIRED,
            A.STATUS_INQUIRY,
            A.OPERATOR,
            binds=("tx_id",),
        ),
        transition(
            E.REFUND_PAYMENT,
            S.STATUS_CHECK_REQUESTED,
            S.REFUNDED,
            A.STATUS_INQUIRY,
            A.OPERATOR,
            binds=("tx_id", "refunded_amount"),
        ),
        transition(
            E.REFUND_PAYMENT,
            REFUNDABLE,
            S.REFUNDED,
            A.STATUS_INQUIRY,
            A.OPERATOR,
            reversal=True,
            binds=("refunded_amount",),
        ),
        transition(E.UPDATE_CUSTOMER, S.PAID, S.CUSTOMER_UPDATED, A.MERCHANT, A.TIMER),
        *refund_requests(E.REQUEST_REFUND, REFUNDABLE),
    ),
)
