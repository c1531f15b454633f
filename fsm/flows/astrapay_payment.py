"""Paying with a linked AstraPay account (``linkInitiate.do`` with the stored mandate).

The first step's guard refuses to start without a mandate. As for every wallet, the callback and
the notification only lead to a status check; AstraPay's inquiry code ``8`` means a refund after a
payment and a failure before one, which the adapter's table decides before it fires. A void or a
refund the inquiry reports leaves ``paid`` before the customer is told, and a payment still
pending past AstraPay's assumed window plus a grace waits in ``needs_review`` for a person.

The browser submits the payment, so the server may first hear of its tXid from an unauthenticated
return. That tXid binds nothing until an inquiry made with it agrees with the payment; meanwhile
neither the verified notification nor another return may be shut out, whatever came first, so
both are accepted in every unsettled state after the browser step.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from fsm.definition import Actor, Deadline, FlowDefinition, StateKind, StateSpec, transition
from fsm.flows._common import (
    ASTRAPAY_EXPIRY,
    HAS_MANDATE,
    PAYMENT_ACTORS,
    STATUS_CHECK_CAP,
    Wallet,
    refund_requests,
    review_after,
    review_transitions,
)


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
    FAILURE_CONFIRMED = "failure_confirmed"
    """From version 2: the merchant told the customer the payment failed."""
    EXPIRY_CONFIRMED = "expiry_confirmed"
    """From version 2: the merchant told the customer the payment expired."""
    EXPIRED = "expired"
    VOIDED = "voided"
    REFUNDED = "refunded"
    NEEDS_REVIEW = "needs_review"


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
    VOID_PAYMENT = "void_payment"
    REFUND_PAYMENT = "refund_payment"
    UPDATE_CUSTOMER = "update_customer"
    REQUEST_REFUND = "request_refund"
    FLAG_FOR_REVIEW = "flag_for_review"


S, E, A = AstrapayPaymentState, AstrapayPaymentEvent, Actor
WAITING = (S.CUSTOMER_REDIRECTED, S.CUSTOMER_PAYING)
# The browser submits linkInitiate, so the server may hear nothing until the callback or the
# notification: both are accepted from the submission on.
BROWSER_STEPS = (S.LINK_INITIATE_SUBMITTED, S.PAYMENT_PAGE_RECEIVED, *WAITING)
# A forged return, or a genuine one whose inquiry failed, leaves the payment waiting for a check
# without a confirmed tXid: the genuine notification and return must still get through.
AWAITING_OUTCOME = (
    *BROWSER_STEPS,
    S.CALLBACK_RECEIVED,
    S.NOTIFICATION_RECEIVED,
    S.STATUS_CHECK_REQUESTED,
)

SETTLED_PAID = (S.PAID, S.CUSTOMER_UPDATED)
REFUNDABLE = (*SETTLED_PAID, S.REFUNDED)
"""Where a (further) refund may be requested; the inquiry's void or refund binds the total."""
POLLING = (S.CUSTOMER_PAYING, S.STATUS_CHECK_REQUESTED)
SUBMIT_WINDOW = timedelta(minutes=20)
"""How long the browser has to submit linkInitiate; AstraPay's window starts after that."""
# Measured from the payment's start: the submission, then AstraPay's assumed window.
_POLL = Deadline(
    timedelta(minutes=1),
    E.CHECK_STATUS,
    backoff_cap=STATUS_CHECK_CAP,
    give_up=review_after(SUBMIT_WINDOW + ASTRAPAY_EXPIRY, E.FLAG_FOR_REVIEW, {}),
)


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
    actors=PAYMENT_ACTORS,
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
            SUBMIT_WINDOW,
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
        StateSpec(
            S.CUSTOMER_PAYING,
            StateKind.WAITING_CUSTOMER,
            deadline=_POLL,
            description="inquiry says unpaid (3): poll again",
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
        StateSpec(
            S.STATUS_CHECK_REQUESTED,
            StateKind.WAITING_PROVIDER,
            deadline=_POLL,
            description="status inquiry under way",
        ),
        StateSpec(
            S.PAID,
            StateKind.SUCCEEDED,
            settlement=True,
            deadline=Deadline(timedelta(minutes=10), E.UPDATE_CUSTOMER),
            description="inquiry status 0; customer not yet told",
        ),
        StateSpec(
            S.NEEDS_REVIEW,
            StateKind.REVIEW,
            deadline=Deadline(timedelta(days=1), E.CHECK_STATUS),
            description="no final status past AstraPay's window and grace: a person decides",
        ),
        StateSpec(S.CUSTOMER_UPDATED, StateKind.SUCCEEDED, final=True),
        StateSpec(S.CHECKOUT_ABANDONED, StateKind.FAILED, final=True),
        StateSpec(S.INITIATE_FAILED, StateKind.FAILED, final=True),
        StateSpec(S.FAILED, StateKind.FAILED, final=True, settlement=True),
        StateSpec(S.EXPIRED, StateKind.FAILED, final=True, settlement=True),
        StateSpec(
            S.VOIDED, StateKind.REVERSED, final=True, settlement=True, description="status 1"
        ),
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
            A.PROVIDER_RESPONSE,
            A.MERCHANT,
        ),
        transition(
            E.FAIL_INITIATE,
            S.LINK_INITIATE_SUBMITTED,
            S.INITIATE_FAILED,
            A.PROVIDER_RESPONSE,
            A.TIMER,
            A.OPERATOR,
        ),
        transition(E.REDIRECT_CUSTOMER, S.PAYMENT_PAGE_RECEIVED, S.CUSTOMER_REDIRECTED, A.MERCHANT),
        transition(E.RECEIVE_CALLBACK, AWAITING_OUTCOME, S.CALLBACK_RECEIVED, A.BROWSER_CALLBACK),
        transition(
            E.RECEIVE_NOTIFICATION,
            AWAITING_OUTCOME,
            S.NOTIFICATION_RECEIVED,
            A.PROVIDER_NOTIFICATION,
            binds=("tx_id",),
        ),
        # Under review only a settlement leaves, but a verified notification still binds its
        # tXid, so the review's checks can ask about it (an unauthenticated return only leaves
        # a hint).
        transition(
            E.RECEIVE_NOTIFICATION,
            S.NEEDS_REVIEW,
            S.NEEDS_REVIEW,
            A.PROVIDER_NOTIFICATION,
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
        # knows it only from the browser's unauthenticated returns (hints) until NICEPAY agrees.
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
        transition(
            E.VOID_PAYMENT,
            S.STATUS_CHECK_REQUESTED,
            S.VOIDED,
            A.STATUS_INQUIRY,
            A.OPERATOR,
            binds=("tx_id", "refunded_amount"),
        ),
        transition(
            E.VOID_PAYMENT,
            SETTLED_PAID,
            S.VOIDED,
            A.STATUS_INQUIRY,
            A.OPERATOR,
            reversal=True,
            binds=("refunded_amount",),
        ),
        *review_transitions(S.NEEDS_REVIEW, POLLING, binds=("tx_id",)),
        *refund_requests(E.REQUEST_REFUND, REFUNDABLE),
    ),
)
