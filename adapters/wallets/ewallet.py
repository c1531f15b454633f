"""The registration-based wallets: OVO's push, and the partner pages of DANA, LinkAja, ShopeePay.

All four register first (``/direct/v2/registration``), then hand the customer's browser NICEPAY's
payment step. OVO pushes to the app of ``billingPhone`` and has no partner page; the others
redirect; ShopeePay asks for ``returnJsonFormat=1`` and gets its app and web links as JSON.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from typing import ClassVar

from adapters.errors import ProviderError
from adapters.nicepay.client import Call
from adapters.nicepay.messages import RegistrationRequest
from adapters.wallets.answers import PaymentAnswers
from adapters.wallets.base import CustomerStep, Gateway, PaymentSteps
from adapters.wallets.orders import PaymentOrder
from adapters.wallets.registration import register_with_recovery
from fsm.definition import Actor
from fsm.errors import InvalidInstanceData
from fsm.flows import EWALLET_PAYMENT, PaymentEvent, Wallet
from fsm.model import Instance


class _RegisteredWallet(PaymentAnswers):
    """Registration and the payment step, shared by every non-AstraPay wallet."""

    wallet: ClassVar[Wallet]
    mitra_cd: ClassVar[str]
    flow: ClassVar[str] = EWALLET_PAYMENT.name
    return_event = PaymentEvent.RETURN_FROM_PARTNER
    """Back from the wallet's page (or the app)."""
    customer_event: ClassVar[PaymentEvent]
    note: ClassVar[str]
    step_call: ClassVar[Call | None] = None
    """The NICEPAY call the payment step makes on the server, if any (recorded as an intent)."""

    def begin(
        self, payment: Instance, order: PaymentOrder, gateway: Gateway, steps: PaymentSteps
    ) -> CustomerStep:
        """Register the payment at NICEPAY and send the customer on.

        Raises:
            ProviderError: registration failed; the payment is in ``registration_failed``.
            TransitionNotAllowed: the payment moved on while NICEPAY answered (the reconciler
                failed a registration it took for lost); recorded, and no step is handed out.
        """
        tx_id, reference_no = self._register(payment, order, gateway, steps)
        # Each step must be applied before the customer is sent on: a payment the reconciler
        # failed meanwhile must never hand out a payable page.
        steps.fire(PaymentEvent.REQUEST_PAYMENT, actor=Actor.MERCHANT, key="request-payment")
        with self._step_call(steps, payment, tx_id, reference_no):
            step = self.customer_step(gateway, payment, tx_id, reference_no)
            steps.fire(self.customer_event, actor=Actor.MERCHANT, key="send-customer")
        return step

    def _step_call(
        self, steps: PaymentSteps, payment: Instance, tx_id: str, reference_no: str
    ) -> AbstractContextManager[object]:
        """The intent of the payment step's NICEPAY call, for a wallet whose step makes one."""
        if self.step_call is None:
            return contextlib.nullcontext()
        asked = {"tXid": tx_id, "referenceNo": reference_no, "amt": payment.amount}
        return steps.recorded_call(self.step_call, request=asked, tx_id=tx_id)

    def customer_step(
        self, gateway: Gateway, payment: Instance, tx_id: str, reference_no: str
    ) -> CustomerStep:
        """Where the customer's browser goes: NICEPAY's payment step as a GET URL."""
        step = gateway.client.payment_step(
            tx_id, reference_no, payment.amount or "", gateway.callback_url
        )
        return CustomerStep(kind="redirect", url=step.get_url, note=self.note)

    def _register(
        self, payment: Instance, order: PaymentOrder, gateway: Gateway, steps: PaymentSteps
    ) -> tuple[str, str]:
        first = steps.fire(PaymentEvent.SEND_REGISTRATION, actor=Actor.MERCHANT, key="register")
        if not first:  # registration is never sent twice under one referenceNo
            raise InvalidInstanceData(f"payment {payment.id!r} was already sent to NICEPAY")
        request = RegistrationRequest.model_validate(
            {
                "amt": payment.amount,
                "referenceNo": payment.reference_no,
                "goodsNm": order.goods_name,
                "mitraCd": self.mitra_cd,
                "billing": order.billing,
                "cart": order.cart,
                "userIP": order.user_ip,
                "dbProcessUrl": gateway.notification_url,
                "description": order.description,
            }
        )
        sent_fields = {
            "referenceNo": request.reference_no,
            "amt": request.amount,
            "mitraCd": self.mitra_cd,
        }
        with steps.recorded_call(Call.REGISTRATION, request=sent_fields):
            try:
                response, reference_no = register_with_recovery(
                    gateway.client, request, suffix=gateway.reference_suffix
                )
            except ProviderError as error:
                payload = {
                    "resultCd": error.provider_code,
                    "resultMsg": error.provider_message,
                    "error": type(error).__name__,
                    "retryable": error.retryable,
                }
                steps.report(
                    PaymentEvent.FAIL_REGISTRATION,
                    actor=Actor.PROVIDER_RESPONSE,
                    key="registration-failed",
                    payload=payload,
                )
                raise
            steps.fire(  # a refusal (failed meanwhile) is raised, not ignored
                PaymentEvent.ACCEPT_REGISTRATION,
                actor=Actor.PROVIDER_RESPONSE,
                key=f"registered:{response.tx_id}",
                payload={
                    "tx_id": response.tx_id,
                    "reference_no": reference_no,
                    "resultCd": response.result_cd,
                },
            )
        return response.tx_id, reference_no


class OvoAdapter(_RegisteredWallet):
    """OVO: the payment step pushes to the OVO app of ``billingPhone``; 55 s to approve."""

    wallet = Wallet.OVO
    mitra_cd = "OVOE"
    customer_event = PaymentEvent.PUSH_TO_APP
    note = "approve the payment in the OVO app within 55 seconds"


class DanaAdapter(_RegisteredWallet):
    """DANA: redirect or jump to DANA's page; login and OTP; 24 h to pay."""

    wallet = Wallet.DANA
    mitra_cd = "DANA"
    customer_event = PaymentEvent.REDIRECT_CUSTOMER
    note = "pay on DANA's page"


class LinkAjaAdapter(_RegisteredWallet):
    """LinkAja: redirect to LinkAja's page; login and OTP; 5 min to pay."""

    wallet = Wallet.LINKAJA
    mitra_cd = "LINK"
    customer_event = PaymentEvent.REDIRECT_CUSTOMER
    note = "pay on LinkAja's page within 5 minutes"


class ShopeePayAdapter(_RegisteredWallet):
    """ShopeePay: jump to the app; the payment step answers JSON with app and web links."""

    wallet = Wallet.SHOPEEPAY
    mitra_cd = "ESHP"
    customer_event = PaymentEvent.REDIRECT_CUSTOMER
    note = "open the ShopeePay app (meant for mobile devices) within 5 minutes"
    step_call = Call.PAYMENT_LINKS

    def customer_step(
        self, gateway: Gateway, payment: Instance, tx_id: str, reference_no: str
    ) -> CustomerStep:
        """The app and web links NICEPAY answers for ``returnJsonFormat=1``."""
        step = gateway.client.payment_step(
            tx_id, reference_no, payment.amount or "", gateway.callback_url, return_json=True
        )
        links = gateway.client.payment_links(step)
        return CustomerStep(
            kind="app_link",
            url=links.app_url or links.web_url or step.get_url,
            app_url=links.app_url,
            web_url=links.web_url,
            note=self.note,
        )


__all__ = ["DanaAdapter", "LinkAjaAdapter", "OvoAdapter", "ShopeePayAdapter"]
