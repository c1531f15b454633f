"""The generic e-wallet payment as the merchant observes it (NICEPAY V2 Direct).

Registration, the payment step, then OVO's push or the partner page of DANA, LinkAja and ShopeePay.
Notifications and browser callbacks only ever lead to a status check; settling (paid, failed,
expired, voided, refunded) takes a status-inquiry result or an operator. Status checks of a
pending payment back off; past the wallet's window plus a grace, the payment waits in
``needs_review`` for a person (or a later inquiry) to settle it.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from fsm.definition import Actor, Deadline, FlowDefinition, StateKind, StateSpec, transition
from fsm.flows._common import (
    PAYMENT_ACTORS,
    PUSH_WALLET,
    REDIRECT_WALLET,
    STATUS_CHECK_CAP,
    WALLET_EXPIRY,
    Wallet,
    refund_requests,
    review_after,
    review_transitions,
)


class PaymentState(StrEnum):
    """States of an e-wallet payment."""

    CHECKOUT_REQUESTED = "checkout_requested"
    CHECKOUT_ABANDONED = "checkout_abandoned"
    REGISTRATION_SENT = "registration_sent"
    REGISTRATION_FAILED = "registration_failed"
    REGISTERED = "registered"
    PAYMENT_REQUESTED = "payment_requested"
    AWAITING_APPROVAL = "awaiting_approval"
    REDIRECTED_TO_PARTNER = "redirected_to_partner"
    NOTIFICATION_RECEIVED = "notification_received"
    STATUS_CHECK_REQUESTED = "status_check_requested"
    PAYMENT_PENDING = "payment_pending"
    PAID = "paid"
    ORDER_CONFIRMED = "order_confirmed"
    FAILED = "failed"
    FAILURE_CONFIRMED = "failure_confirmed"
    """From version 2: the merchant told the customer the payment failed."""
    EXPIRY_CONFIRMED = "expiry_confirmed"
    """From version 2: the merchant told the customer the payment expired."""
    EXPIRED = "expired"
    VOIDED = "voided"
    REFUNDED = "refunded"
    NEEDS_REVIEW = "needs_review"


class PaymentEvent(StrEnum):
    """Events of an e-wallet payment."""

    SEND_REGISTRATION = "send_registration"
    ABANDON_CHECKOUT = "abandon_checkout"
    ACCEPT_REGISTRATION = "accept_registration"
    FAIL_REGISTRATION = "fail_registration"
    REQUEST_PAYMENT = "request_payment"
    PUSH_TO_APP = "push_to_app"
    REDIRECT_CUSTOMER = "redirect_customer"
    RECEIVE_NOTIFICATION = "receive_notification"
    RETURN_FROM_PARTNER = "return_from_partner"
    CHECK_STATUS = "check_status"
    REPORT_PENDING = "report_pending"
    CONFIRM_PAYMENT = "confirm_payment"
    FAIL_PAYMENT = "fail_payment"
    EXPIRE_PAYMENT = "expire_payment"
    VOID_PAYMENT = "void_payment"
    REFUND_PAYMENT = "refund_payment"
    CONFIRM_ORDER = "confirm_order"
    REQUEST_REFUND = "request_refund"
    FLAG_FOR_REVIEW = "flag_for_review"


S, E, A = PaymentState, PaymentEvent, Actor
_CHECK = E.CHECK_STATUS

CUSTOMER_WAITING = (S.PAYMENT_REQUESTED, S.AWAITING_APPROVAL, S.REDIRECTED_TO_PARTNER)
INQUIRY_PENDING = (*CUSTOMER_WAITING, S.PAYMENT_PENDING)
SETTLED_PAID = (S.PAID, S.ORDER_CONFIRMED)
REFUNDABLE = (*SETTLED_PAID, S.REFUNDED)
"""Where a (further) refund may be requested; the inquiry's void or refund binds the total."""
_REFUNDED = ("refunded_amount",)
POLLING = (S.STATUS_CHECK_REQUESTED, S.PAYMENT_PENDING)
_REVIEW = review_after(max(WALLET_EXPIRY.values()), E.FLAG_FOR_REVIEW, WALLET_EXPIRY)


def _deadline(
    after: timedelta, on_expiry: str, per_wallet: dict[str, timedelta] | None = None
) -> Deadline:
    return Deadline(after=after, on_expiry=on_expiry, per_wallet=per_wallet or {})


def _polling(after: timedelta, per_wallet: dict[str, timedelta] | None = None) -> Deadline:
    """A status check that backs off, and hands the payment to a person past its window."""
    return Deadline(after, _CHECK, per_wallet or {}, backoff_cap=STATUS_CHECK_CAP, give_up=_REVIEW)


EWALLET_PAYMENT = FlowDefinition(
    name="ewallet_payment",
    description="E-wallet payment through NICEPAY V2 Direct: OVO push or partner redirect",
    wallets=(Wallet.OVO, Wallet.DANA, Wallet.LINKAJA, Wallet.SHOPEEPAY),
    initial=S.CHECKOUT_REQUESTED,
    actors=PAYMENT_ACTORS,
    states=(
        StateSpec(
            S.CHECKOUT_REQUESTED,
            StateKind.START,
            deadline=_deadline(timedelta(minutes=15), E.ABANDON_CHECKOUT),
            description="the customer chose an e-wallet; nothing sent to NICEPAY yet",
        ),
        StateSpec(
            S.REGISTRATION_SENT,
            StateKind.WAITING_PROVIDER,
            deadline=_deadline(timedelta(minutes=1), E.FAIL_REGISTRATION),
            description="registration posted; waiting for the tXid",
        ),
        StateSpec(
            S.REGISTERED,
            StateKind.IN_PROGRESS,
            deadline=_deadline(timedelta(minutes=15), _CHECK),
            description="tXid known (inquiry status 9)",
        ),
        StateSpec(
            S.PAYMENT_REQUESTED,
            StateKind.IN_PROGRESS,
            deadline=_deadline(timedelta(minutes=2), _CHECK),
            description="the browser was sent to NICEPAY's payment step",
        ),
        StateSpec(
            S.AWAITING_APPROVAL,
            StateKind.WAITING_CUSTOMER,
            deadline=_deadline(
                WALLET_EXPIRY[Wallet.OVO], _CHECK, {Wallet.OVO: WALLET_EXPIRY[Wallet.OVO]}
            ),
            description="push sent to the customer's OVO app",
        ),
        StateSpec(
            S.REDIRECTED_TO_PARTNER,
            StateKind.WAITING_CUSTOMER,
            deadline=_deadline(
                timedelta(minutes=5),
                _CHECK,
                {w: WALLET_EXPIRY[w] for w in (Wallet.DANA, Wallet.LINKAJA, Wallet.SHOPEEPAY)},
            ),
            description="customer on the partner's page (DANA, LinkAja, ShopeePay)",
        ),
        StateSpec(
            S.NOTIFICATION_RECEIVED,
            StateKind.IN_PROGRESS,
            deadline=_deadline(timedelta(seconds=30), _CHECK),
            description="a verified notification arrived; it must be confirmed by inquiry",
        ),
        StateSpec(
            S.STATUS_CHECK_REQUESTED,
            StateKind.WAITING_PROVIDER,
            deadline=_polling(timedelta(minutes=1)),
            description="status inquiry under way; its result decides",
        ),
        StateSpec(
            S.PAYMENT_PENDING,
            StateKind.WAITING_CUSTOMER,
            deadline=_polling(
                timedelta(minutes=1),
                {Wallet.OVO: timedelta(seconds=15), Wallet.DANA: timedelta(minutes=15)},
            ),
            description="NICEPAY reports initiated, unpaid or processing (9, 3, 4): poll again",
        ),
        StateSpec(
            S.PAID,
            StateKind.SUCCEEDED,
            settlement=True,
            deadline=_deadline(timedelta(minutes=10), E.CONFIRM_ORDER),
            description="inquiry status 0; the order is not yet confirmed to the customer",
        ),
        StateSpec(
            S.NEEDS_REVIEW,
            StateKind.REVIEW,
            deadline=_deadline(timedelta(days=1), _CHECK),
            description="no final status past the wallet's window and grace: a person decides",
        ),
        StateSpec(S.ORDER_CONFIRMED, StateKind.SUCCEEDED, final=True),
        StateSpec(S.CHECKOUT_ABANDONED, StateKind.FAILED, final=True),
        StateSpec(S.REGISTRATION_FAILED, StateKind.FAILED, final=True),
        StateSpec(S.FAILED, StateKind.FAILED, final=True, settlement=True, description="status 8"),
        StateSpec(S.EXPIRED, StateKind.FAILED, final=True, settlement=True, description="status 5"),
        StateSpec(
            S.VOIDED, StateKind.REVERSED, final=True, settlement=True, description="status 1"
        ),
        StateSpec(
            S.REFUNDED, StateKind.REVERSED, final=True, settlement=True, description="status 2"
        ),
    ),
    transitions=(
        transition(E.SEND_REGISTRATION, S.CHECKOUT_REQUESTED, S.REGISTRATION_SENT, A.MERCHANT),
        transition(
            E.ABANDON_CHECKOUT,
            S.CHECKOUT_REQUESTED,
            S.CHECKOUT_ABANDONED,
            A.MERCHANT,
            A.TIMER,
            A.OPERATOR,
        ),
        transition(
            E.ACCEPT_REGISTRATION,
            S.REGISTRATION_SENT,
            S.REGISTERED,
            A.PROVIDER_RESPONSE,
            A.OPERATOR,
            binds=("tx_id", "reference_no"),
        ),
        transition(
            E.FAIL_REGISTRATION,
            S.REGISTRATION_SENT,
            S.REGISTRATION_FAILED,
            A.PROVIDER_RESPONSE,
            A.TIMER,
            A.OPERATOR,
        ),
        transition(E.REQUEST_PAYMENT, S.REGISTERED, S.PAYMENT_REQUESTED, A.MERCHANT),
        transition(
            E.PUSH_TO_APP,
            S.PAYMENT_REQUESTED,
            S.AWAITING_APPROVAL,
            A.MERCHANT,
            A.PROVIDER_RESPONSE,
            guard=PUSH_WALLET,
        ),
        transition(
            E.REDIRECT_CUSTOMER,
            S.PAYMENT_REQUESTED,
            S.REDIRECTED_TO_PARTNER,
            A.MERCHANT,
            A.PROVIDER_RESPONSE,
            guard=REDIRECT_WALLET,
        ),
        transition(
            E.RECEIVE_NOTIFICATION,
            INQUIRY_PENDING,
            S.NOTIFICATION_RECEIVED,
            A.PROVIDER_NOTIFICATION,
        ),
        transition(
            E.RETURN_FROM_PARTNER,
            (*INQUIRY_PENDING, S.NOTIFICATION_RECEIVED),
            S.STATUS_CHECK_REQUESTED,
            A.BROWSER_CALLBACK,
        ),
        transition(
            E.CHECK_STATUS,
            (S.REGISTERED, *INQUIRY_PENDING, S.NOTIFICATION_RECEIVED, S.STATUS_CHECK_REQUESTED),
            S.STATUS_CHECK_REQUESTED,
            A.MERCHANT,
            A.TIMER,
            A.OPERATOR,
        ),
        transition(E.REPORT_PENDING, S.STATUS_CHECK_REQUESTED, S.PAYMENT_PENDING, A.STATUS_INQUIRY),
        transition(
            E.CONFIRM_PAYMENT, S.STATUS_CHECK_REQUESTED, S.PAID, A.STATUS_INQUIRY, A.OPERATOR
        ),
        transition(
            E.FAIL_PAYMENT, S.STATUS_CHECK_REQUESTED, S.FAILED, A.STATUS_INQUIRY, A.OPERATOR
        ),
        transition(
            E.EXPIRE_PAYMENT, S.STATUS_CHECK_REQUESTED, S.EXPIRED, A.STATUS_INQUIRY, A.OPERATOR
        ),
        transition(
            E.VOID_PAYMENT,
            S.STATUS_CHECK_REQUESTED,
            S.VOIDED,
            A.STATUS_INQUIRY,
            A.OPERATOR,
            binds=_REFUNDED,
        ),
        transition(
            E.VOID_PAYMENT,
            SETTLED_PAID,
            S.VOIDED,
            A.STATUS_INQUIRY,
            A.OPERATOR,
            reversal=True,
            binds=_REFUNDED,
        ),
        transition(
            E.REFUND_PAYMENT,
            S.STATUS_CHECK_REQUESTED,
            S.REFUNDED,
            A.STATUS_INQUIRY,
            A.OPERATOR,
            binds=_REFUNDED,
        ),
        transition(
            E.REFUND_PAYMENT,
            REFUNDABLE,
            S.REFUNDED,
            A.STATUS_INQUIRY,
            A.OPERATOR,
            reversal=True,
            binds=_REFUNDED,
        ),
        transition(E.CONFIRM_ORDER, S.PAID, S.ORDER_CONFIRMED, A.MERCHANT, A.TIMER),
        *refund_requests(E.REQUEST_REFUND, REFUNDABLE),
        *review_transitions(S.NEEDS_REVIEW, POLLING),
    ),
)
