"""AstraPay: link the customer's account once (``linkEnable.do``), then pay with the mandate.

Both calls are browser form submits, so the server learns the outcome only from the callback and
the notification. How the mandate comes back is undocumented (reference §13): it is read from the
link notification under a configurable list of field names, and a link confirmed without one waits
in ``mandate_missing`` for an operator. The callback is unauthenticated: its raw parameters, a
mandate among them, are stored as a hint for that operator and set nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

from adapters.nicepay.messages import LinkEnableRequest, LinkInitiateRequest
from adapters.wallets.base import CustomerStep
from fsm.definition import Actor
from fsm.errors import InvalidInstanceData
from fsm.flows import AstrapayPaymentEvent, LinkEvent, Wallet

if TYPE_CHECKING:
    from adapters.service import LinkOrder, PaymentOrder, PaymentService
    from fsm.model import Instance

MANDATE_FIELDS: tuple[str, ...] = ("mandateID", "mandateId")
"""Where a link notification (or, as a hint, a callback) carries the mandate, by preference."""


def find_mandate(params: Mapping[str, str], fields: Sequence[str] = MANDATE_FIELDS) -> str | None:
    """The first non-empty mandate among ``fields``, if any."""
    return next((params[name] for name in fields if params.get(name)), None)


class AstrapayAdapter:
    """AstraPay payments with a linked account's mandate."""

    wallet: ClassVar[Wallet] = Wallet.ASTRAPAY
    mitra_cd: ClassVar[str] = "ASTR"
    flow: ClassVar[str] = "astrapay_payment"

    def begin(
        self, service: PaymentService, payment: Instance, order: PaymentOrder
    ) -> CustomerStep:
        """Submit ``linkInitiate`` with the mandate: the flow's guard refuses without one."""
        # Raises GuardRefused (recorded) when the account is not linked.
        submitted = service.engine.fire_with_retry(
            payment.id,
            AstrapayPaymentEvent.SUBMIT_LINK_INITIATE,
            actor=Actor.MERCHANT,
            idempotency_key="link-initiate",
        )
        if submitted.duplicate:  # a second form would let the browser pay twice
            raise InvalidInstanceData(f"payment {payment.id!r} was already sent to NICEPAY")
        request = LinkInitiateRequest.model_validate(
            {
                "mandateID": payment.mandate,
                "amt": payment.amount,
                "referenceNo": payment.reference_no,
                "goodsNm": order.goods_name,
                "billing": order.billing,
                "dbProcessUrl": service.notification_url,
                "callBackUrl": service.callback_url,
            }
        )
        form = service.client.link_initiate(request)
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
    flow: ClassVar[str] = "astrapay_link"

    def begin(self, service: PaymentService, link: Instance, order: LinkOrder) -> CustomerStep:
        """The linkEnable form the customer's browser submits."""
        request = LinkEnableRequest.model_validate(
            {
                "referenceNo": link.reference_no,
                "billingNm": order.billing_name,
                "billingPhone": order.billing_phone,
                "billingEmail": order.billing_email,
                "dbProcessUrl": service.notification_url,
                "callBackUrl": service.callback_url,
                "userIP": order.user_ip,
            }
        )
        form = service.client.link_enable(request)
        return CustomerStep(
            kind="form", method="POST", url=form.url, fields=dict(form.fields), note="link AstraPay"
        )

    @staticmethod
    def notified(
        service: PaymentService, link: Instance, params: Mapping[str, str], key: str
    ) -> None:
        """A verified link notification: linked (with or without a mandate), or failed."""
        mandate = find_mandate(params, service.mandate_fields)
        if params.get("status", "0") != "0":
            event, payload = LinkEvent.FAIL_LINK, dict(params)
        elif mandate:
            event, payload = LinkEvent.CONFIRM_LINK, {**params, "mandate": mandate}
        else:  # an operator attaches the mandate (PaymentService.attach_mandate)
            event, payload = LinkEvent.CONFIRM_LINK_WITHOUT_MANDATE, dict(params)
        service.fire(link.id, event, Actor.PROVIDER_NOTIFICATION, key, payload)

    @staticmethod
    def returned(
        service: PaymentService, link: Instance, params: Mapping[str, str], key: str
    ) -> None:
        """The browser came back: recorded as a hint, whatever it says.

        The return is unauthenticated, so a mandate it carries sets nothing; it stays in the
        recorded parameters, where an operator can read it before attaching one.
        """
        service.record_hint(link, "browser_return", key, params)
