"""AstraPay: link the customer's account once (``linkEnable.do``), then pay with the mandate.

Both calls are browser form submits, so the server learns the outcome only from the callback and
the notification. How the mandate comes back is undocumented (reference §13): it is read from the
link notification under a configurable list of field names, and a link confirmed without one waits
in ``mandate_missing`` for an operator. The callback is unauthenticated: its raw parameters, a
mandate among them, are stored as a hint for that operator and set nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from adapters.nicepay.messages import LinkEnableRequest, LinkInitiateRequest
from adapters.wallets.answers import (
    BrowserReturn,
    NotificationKind,
    Notified,
    PaymentAnswers,
    link_notification_key,
)
from adapters.wallets.base import CustomerStep, Gateway, PaymentSteps
from adapters.wallets.orders import LinkOrder, PaymentOrder
from fsm.definition import Actor
from fsm.errors import InvalidInstanceData
from fsm.flows import ASTRAPAY_LINK, ASTRAPAY_PAYMENT, AstrapayPaymentEvent, LinkEvent, Wallet
from fsm.model import Instance

MANDATE_FIELDS: tuple[str, ...] = ("mandateID", "mandateId")
"""Where a link notification (or, as a hint, a callback) carries the mandate, by preference."""
BROWSER_RETURN = "browser_return"
"""The event a link's browser return is recorded under: a hint, which no flow takes."""


def find_mandate(params: Mapping[str, str], fields: Sequence[str] = MANDATE_FIELDS) -> str | None:
    """The first non-empty mandate among ``fields``, if any."""
    return next((params[name] for name in fields if params.get(name)), None)


class AstrapayAdapter(PaymentAnswers):
    """AstraPay payments with a linked account's mandate.

    NICEPAY answers the linkInitiate submit to the browser only, so a browser return may be where
    the server first hears of the payment's tXid: it is kept as a hint even when the return moves
    nothing, and only an inquiry's answer binds it (:mod:`adapters.reconcile.hints`). The inquiry
    table's ``8`` means a refund once the payment was paid (:mod:`adapters.wallets.status_codes`).
    """

    wallet: ClassVar[Wallet] = Wallet.ASTRAPAY
    mitra_cd: ClassVar[str] = "ASTR"
    flow: ClassVar[str] = ASTRAPAY_PAYMENT.name
    notification_event = AstrapayPaymentEvent.RECEIVE_NOTIFICATION
    return_event = AstrapayPaymentEvent.RECEIVE_CALLBACK
    keeps_tx_id_hint = True

    def begin(
        self, payment: Instance, order: PaymentOrder, gateway: Gateway, steps: PaymentSteps
    ) -> CustomerStep:
        """Submit ``linkInitiate`` with the mandate: the flow's guard refuses without one."""
        # Raises GuardRefused (recorded) when the account is not linked.
        first = steps.fire(
            AstrapayPaymentEvent.SUBMIT_LINK_INITIATE, actor=Actor.MERCHANT, key="link-initiate"
        )
        if not first:  # a second form would let the browser pay twice
            raise InvalidInstanceData(f"payment {payment.id!r} was already sent to NICEPAY")
        request = LinkInitiateRequest.model_validate(
            {
                "mandateID": payment.mandate,
                "amt": payment.amount,
                "referenceNo": payment.reference_no,
                "goodsNm": order.goods_name,
                "billing": order.billing,
                "dbProcessUrl": gateway.notification_url,
                "callBackUrl": gateway.callback_url,
            }
        )
        form = gateway.client.link_initiate(request)
        return CustomerStep(
            kind="form",
            method="POST",
            url=form.url,
            fields=dict(form.fields),
            note="verify on AstraPay",
        )


class AstrapayLinkAdapter:
    """Linking a customer's AstraPay account (``linkEnable.do``)."""

    wallet: ClassVar[Wallet] = Wallet.ASTRAPAY
    flow: ClassVar[str] = ASTRAPAY_LINK.name
    notification_kind: ClassVar[NotificationKind] = NotificationKind.ACCOUNT_LINK

    def begin(self, link: Instance, order: LinkOrder, gateway: Gateway) -> CustomerStep:
        """The linkEnable form the customer's browser submits."""
        request = LinkEnableRequest.model_validate(
            {
                "referenceNo": link.reference_no,
                "billingNm": order.billing_name,
                "billingPhone": order.billing_phone,
                "billingEmail": order.billing_email,
                "dbProcessUrl": gateway.notification_url,
                "callBackUrl": gateway.callback_url,
                "userIP": order.user_ip,
            }
        )
        form = gateway.client.link_enable(request)
        return CustomerStep(
            kind="form", method="POST", url=form.url, fields=dict(form.fields), note="link AstraPay"
        )

    def on_notification(
        self,
        instance: Instance,
        params: Mapping[str, str],
        *,
        imid: str,
        mandate_fields: Sequence[str],
    ) -> Notified:
        """A verified link notification: linked (with or without a mandate), or failed.

        Its status decides: no inquiry exists for an account link.
        """
        mandate = find_mandate(params, mandate_fields)
        key = link_notification_key(imid, params, with_mandate=mandate is not None)
        if params.get("status", "0") != "0":
            return Notified(LinkEvent.FAIL_LINK, key, inquire=False)
        if mandate:
            return Notified(LinkEvent.CONFIRM_LINK, key, {"mandate": mandate}, inquire=False)
        # An operator attaches the mandate (PaymentService.attach_mandate).
        return Notified(LinkEvent.CONFIRM_LINK_WITHOUT_MANDATE, key, inquire=False)

    def on_return(self, instance: Instance) -> BrowserReturn:
        """The browser came back: recorded as a hint, whatever it says.

        The return is unauthenticated, so a mandate it carries sets nothing; it stays in the
        recorded parameters, where an operator can read it before attaching one.
        """
        return BrowserReturn(BROWSER_RETURN, checks_status=False)

    def inquiry_event(self, status: str, state: str) -> str | None:
        """Nothing: an account link has no transaction to inquire about."""
        return None


__all__ = [
    "BROWSER_RETURN",
    "MANDATE_FIELDS",
    "AstrapayAdapter",
    "AstrapayLinkAdapter",
    "find_mandate",
]
