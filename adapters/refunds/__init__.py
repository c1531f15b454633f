"""Refunds and voids as recorded, idempotent requests: what ``PaymentService.cancel`` runs.

Each request carries its caller's id (``request_id``, an idempotency key as Stripe's). Its cancel
call is recorded as an intent under ``refund:<request_id>`` before anything is sent, and the
database holds one intent per key and payment: the same request again, from any replica, before
or after the first one finished, is answered from that intent and sends nothing.

A new request goes through, in order:

1. its input, the payment's state (the flow must allow ``request_refund``), the amount against
   what is left to refund (the paid amount less the larger of the confirmed refunded total and
   what NICEPAY accepted), and the wallet's documented cancel rules
   (:mod:`adapters.wallets.cancel_rules`); a refusal is a typed error and nothing is stored;
2. the intent, exclusive per payment, so two cancels of one payment never overlap, recorded
   with a claim on the payment (as a reconciler claims one) that keeps every reconciler from
   repairing it until the cancel is done (a reconciler holding it refuses the request:
   ``InstanceBusy``);
3. an inquiry: NICEPAY's refunded total must be one the payment's recorded cancels account for
   (:mod:`adapters.refunds.total_check`), else those closed as not refunded go back in doubt
   and nothing is sent (``RefundTotalsDisagree``); a total no cancel of the library explains
   was refunded outside it and counts against what is left; an inquiry that fails, or answers
   about another transaction, sends nothing (``unsent:inquiry_failed``); then what is left is
   checked again against the requests that finished meanwhile, and a request that no longer
   fits closes its intent ``refused:exceeds_payment``;
4. the ``request_refund`` step in the payment's log (amount, request id, reason, who asked);
5. the cancel, once its claim is renewed (a process that stalled past it sends nothing and
   closes the intent ``unsent:hold_lost``): NICEPAY's documented refusal ends the request
   declined (``refused:<code>``, its amount no longer reserved); a lost answer, or one that is
   no documented refusal, leaves it in doubt, for the reconciler's inquiry;
6. a status check, whose void or refund binds the payment's refunded total.

A repair closes a cancel's intent as not refunded only once the cancel can no longer reach
NICEPAY (a grace after it gave up or its claim ran out). A cancel that outlasts even that may
find its intent closed; what it learnt still counts
(:func:`~adapters.reconcile.refund_repair.keep_late_answer`).

A request NICEPAY's cumulative total cannot settle (its cancel and another in doubt each fit it)
stays in doubt, its amount reserved, until a later repair can tell, or a person settles it by
hand (:func:`settle_by_hand`, ``ewallet-fsm settle-refund``); so does one NICEPAY never states
a total for, closed ``repaired:no_total`` after the reconciler's ``longest_unheard``.
"""

from adapters.refunds.cancel import Refunds, committed, paid_at
from adapters.refunds.outcome import Refund, RefundStatus
from adapters.refunds.request import RefundRequest, refund_request
from adapters.refunds.settle import settle_by_hand

__all__ = [
    "Refund",
    "RefundRequest",
    "RefundStatus",
    "Refunds",
    "committed",
    "paid_at",
    "refund_request",
    "settle_by_hand",
]
