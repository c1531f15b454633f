"""``NicepayClient``: the NICEPAY V2 Direct calls over an injected ``httpx.Client``.

Every call goes through one exchange (:mod:`adapters.nicepay.exchange`), where NICEPAY's failures
become typed errors, and every body is built and signed without I/O
(:mod:`adapters.nicepay.signing`). Only inquiry is retried, with bounded exponential backoff and
a fresh timeStamp and token per try. Registration is sent exactly once
(:mod:`~adapters.wallets.registration` recovers it), cancel too: a repeated partial cancel could
refund twice. The payment step and the AstraPay calls are browser steps: the client builds them
and never sends them. The merchant key and the tokens never appear in a log record or an error;
``resultMsg`` is scrubbed of both in case an echo carries them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, TypedDict, TypeVar

import httpx
from pydantic import BaseModel, SecretStr

from adapters.errors import ProviderError
from adapters.nicepay.config import InquiryRetry, NicepayCredentials
from adapters.nicepay.exchange import SUCCESS, fetch_payment_links, parse_response, send_json
from adapters.nicepay.messages import (
    BrowserForm,
    LinkEnableRequest,
    LinkInitiateRequest,
    PaymentStep,
    RegistrationRequest,
    amount_string,
)
from adapters.nicepay.responses import (
    CancelResponse,
    InquiryResponse,
    RegistrationResponse,
    ShopeePayRedirect,
)
from adapters.nicepay.signing import (
    cancel_body,
    inquiry_body,
    link_enable_form,
    link_initiate_form,
    payment_step_fields,
    registration_body,
)
from adapters.nicepay.tokens import nicepay_timestamp
from adapters.telemetry import ServiceTelemetry, default_telemetry
from fsm.clock import Clock
from fsm.errors import ConfigurationError

logger = logging.getLogger(__name__)

REGISTRATION_PATH: Final = "/direct/v2/registration"
PAYMENT_PATH: Final = "/direct/v2/payment"
INQUIRY_PATH: Final = "/direct/v2/inquiry"
CANCEL_PATH: Final = "/direct/v2/cancel"
LINK_ENABLE_PATH: Final = "/api/linkEnable.do"
LINK_INITIATE_PATH: Final = "/api/linkInitiate.do"

R = TypeVar("R", bound=BaseModel)


class Call(StrEnum):
    """The calls the client sends to NICEPAY; a server records each as an intent first."""

    REGISTRATION = "registration"
    PAYMENT_LINKS = "payment_links"
    """ShopeePay's payment step asked for its app and web links as JSON."""
    INQUIRY = "inquiry"
    CANCEL = "cancel"


class _Signer(TypedDict):
    imid: str
    key: SecretStr
    timestamp: str


@dataclass(frozen=True)
class _Call:
    """What a log record and an error may say about one call: ids, never secrets."""

    operation: str
    reference_no: str
    tx_id: str = ""


class NicepayClient:
    """NICEPAY V2 Direct over an injected ``httpx.Client``, with credentials and clock injected.

    Args:
        http: The client to send with. Its timeout must set connect, read, write and pool.
        credentials: Base URL, ``iMid`` and merchant key, as one unit.
        clock: The source of every ``timeStamp`` (formatted in Asia/Jakarta).
        inquiry_retry: How inquiries are retried after a retryable failure.
        sleep: Waits between inquiry retries; injected so tests do not sleep.
        telemetry: Where each call's span and duration go (:mod:`adapters.telemetry`; by
            default the global OpenTelemetry providers).

    Raises:
        ConfigurationError: ``http`` has a timeout that is unset or partly unset.
    """

    def __init__(
        self,
        http: httpx.Client,
        credentials: NicepayCredentials,
        *,
        clock: Clock,
        inquiry_retry: InquiryRetry | None = None,
        sleep: Callable[[float], None] = time.sleep,
        telemetry: ServiceTelemetry | None = None,
    ) -> None:
        timeout = http.timeout
        unset = [
            name for name in ("connect", "read", "write", "pool") if getattr(timeout, name) is None
        ]
        if unset:
            raise ConfigurationError(
                f"the httpx.Client has no {'/'.join(unset)} timeout; give it an httpx.Timeout "
                "with every part set, so a NICEPAY call cannot hang"
            )
        self._http = http
        self._credentials = credentials
        self._clock = clock
        self._retry = inquiry_retry or InquiryRetry()
        self._sleep = sleep
        self._telemetry = telemetry or default_telemetry()

    def __repr__(self) -> str:
        return f"NicepayClient(base_url={self._credentials.base_url!r}, imid={self.imid!r})"

    @property
    def credentials(self) -> NicepayCredentials:
        """The configuration unit this client signs with (the key stays a ``SecretStr``)."""
        return self._credentials

    @property
    def imid(self) -> str:
        """The merchant ID this client signs for."""
        return self._credentials.imid

    def register(self, request: RegistrationRequest) -> RegistrationResponse:
        """Register a transaction, sending it exactly once.

        A timeout leaves the outcome unknown; use
        :func:`adapters.wallets.registration.register_with_recovery` rather than calling this again.

        Args:
            request: The validated business fields (the cart already adds up to ``amt``).

        Returns:
            The response with the ``tXid`` every later call needs.

        Raises:
            ProviderError: the matching subclass for a transport failure, an HTTP error, a
                malformed body or a ``resultCd`` other than ``0000``.
        """
        body = registration_body(request, **self._signer())
        call = _Call(Call.REGISTRATION, request.reference_no)
        return self._post(REGISTRATION_PATH, body, RegistrationResponse, call)

    def payment_step(
        self,
        tx_id: str,
        reference_no: str,
        amount: str | int,
        callback_url: str,
        *,
        return_json: bool = False,
    ) -> PaymentStep:
        """Build the browser's ``/direct/v2/payment`` request with a fresh timeStamp and T1.

        Nothing is sent: the customer's browser opens ``get_url`` or submits the form.

        Args:
            tx_id: The ``tXid`` from registration.
            reference_no: The registered ``referenceNo`` (signed, not sent).
            amount: The registered amount, exactly as registered (signed, not sent).
            callback_url: Where NICEPAY sends the browser back; URL-encoded in ``get_url``.
            return_json: Ask for JSON instead of an HTML redirect (``returnJsonFormat=1``,
                ShopeePay).

        Returns:
            The step as a GET URL and as POST form fields.

        Raises:
            ValueError: ``amount`` is not a digit string, or ``tx_id``/``callback_url`` is empty.
        """
        amt = amount_string(amount)
        if not tx_id or not callback_url:
            raise ValueError("payment step needs a tXid and a callBackUrl")
        fields = payment_step_fields(
            tx_id, reference_no, amt, callback_url, return_json=return_json, **self._signer()
        )
        self._log_built(_Call("payment", reference_no, tx_id))
        return PaymentStep.build(self._url(PAYMENT_PATH), fields, returns_json=return_json)

    def payment_links(self, step: PaymentStep) -> ShopeePayRedirect:
        """Fetch the app and web links of a ``returnJsonFormat=1`` payment step (ShopeePay).

        With JSON requested, NICEPAY answers links instead of an HTML redirect, so the server
        may fetch them and hand them to the customer's device. This opens the payment at
        NICEPAY, so it is sent once and never retried; on failure, build a new step. (NICEPAY's
        sandbox whitelists ShopeePay device IPs, so the customer's device may have to fetch
        ``step.get_url`` itself; parse that answer with :class:`ShopeePayRedirect`.)

        Args:
            step: A step built with ``return_json=True``.

        Returns:
            The links; ``app_url`` and/or ``web_url`` is set.

        Raises:
            ValueError: ``step`` did not ask for JSON.
            ProviderError: the matching subclass; an answer with neither link is a
                :class:`~adapters.errors.MalformedResponse`.
        """
        if not step.returns_json:
            raise ValueError("payment_links needs a step built with return_json=True")
        call = _Call(Call.PAYMENT_LINKS, "", step.fields.get("tXid", ""))
        secrets = (self._key.get_secret_value(), step.fields.get("merchantToken", ""))
        return self._logged(
            call, lambda: fetch_payment_links(self._http, step, call.operation, secrets=secrets)
        )

    def inquiry(self, tx_id: str, reference_no: str, amount: str | int) -> InquiryResponse:
        """Ask NICEPAY for a transaction's status, retrying retryable failures with backoff.

        Args:
            tx_id: The ``tXid`` from registration.
            reference_no: The registered ``referenceNo``.
            amount: The registered amount string, byte for byte.

        Returns:
            The response; its ``status`` is the lifecycle (``resultCd`` ``0000`` only means the
            inquiry worked).

        Raises:
            ProviderError: a non-retryable failure at once, or the last retryable one after
                ``inquiry_retry.attempts`` tries.
        """
        amt = amount_string(amount)
        call = _Call(Call.INQUIRY, reference_no, tx_id)
        for failures in range(1, self._retry.attempts + 1):
            try:
                return self._inquire_once(call, amt)
            except ProviderError as exc:
                if not exc.retryable or failures == self._retry.attempts:
                    raise
                self._sleep(self._retry.delay(failures))
        raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover

    def cancel(
        self,
        tx_id: str,
        reference_no: str,
        amount: str | int,
        *,
        partial: bool,
        reason: str = "",
    ) -> CancelResponse:
        """Cancel (void or refund) all or part of a transaction; sent once, never retried.

        Args:
            tx_id: The ``tXid`` to cancel.
            reference_no: The registered ``referenceNo`` (sent, as the SDKs do).
            amount: The amount being cancelled, also signed in T2.
            partial: ``cancelType`` 2 when true, 1 (full) when false.
            reason: ``cancelMsg``.

        Returns:
            The response. Run an inquiry afterwards: ``status`` 1 (void) or 2 (refund).

        Raises:
            ProviderError: the matching subclass; the cancel rules answer with
                :class:`~adapters.errors.CancelRefused`.
        """
        amt = amount_string(amount)
        body = cancel_body(
            tx_id, reference_no, amt, partial=partial, reason=reason, **self._signer()
        )
        call = _Call(Call.CANCEL, reference_no, tx_id)
        return self._post(CANCEL_PATH, body, CancelResponse, call)

    def link_enable(self, request: LinkEnableRequest) -> BrowserForm:
        """Build the AstraPay account-link form (``linkEnable.do``, token T4) for the browser.

        Args:
            request: The link fields, extra undocumented fields included.

        Returns:
            A POST form; nothing is sent.
        """
        self._log_built(_Call("link_enable", request.reference_no))
        return link_enable_form(self._url(LINK_ENABLE_PATH), request, **self._signer())

    def link_initiate(self, request: LinkInitiateRequest) -> BrowserForm:
        """Build the AstraPay mandate payment form (``linkInitiate.do``, token T5) for the browser.

        Args:
            request: The payment fields, ``mandateID`` and extra fields included.

        Returns:
            A POST form; nothing is sent.
        """
        self._log_built(_Call("link_initiate", request.reference_no))
        return link_initiate_form(self._url(LINK_INITIATE_PATH), request, **self._signer())

    @property
    def _key(self) -> SecretStr:
        return self._credentials.merchant_key

    def _signer(self) -> _Signer:
        """Who signs, with what, and when: a fresh ``timeStamp`` for every body."""
        return {"imid": self.imid, "key": self._key, "timestamp": self._timestamp()}

    def _timestamp(self) -> str:
        return nicepay_timestamp(self._clock.now())

    def _url(self, path: str) -> str:
        return self._credentials.url(path)

    def _inquire_once(self, call: _Call, amt: str) -> InquiryResponse:
        # A fresh timeStamp per try: NICEPAY may check the request time (9031).
        body = inquiry_body(call.tx_id, call.reference_no, amt, **self._signer())
        return self._post(INQUIRY_PATH, body, InquiryResponse, call)

    def _post(self, path: str, body: Mapping[str, str], model: type[R], call: _Call) -> R:
        secrets = (self._key.get_secret_value(), body["merchantToken"])

        def exchange() -> R:
            response = send_json(self._http, self._url(path), body, call.operation)
            return parse_response(response, model, call.operation, secrets=secrets)

        return self._logged(call, exchange)

    def _logged(self, call: _Call, exchange: Callable[[], R]) -> R:
        # One record per call, whatever happens: ids, resultCd and time, never a body.
        started = time.perf_counter()
        outcome, tx_id, status = "", call.tx_id, None
        with self._telemetry.provider_call(call.operation) as measured:
            try:
                parsed = exchange()
            except ProviderError as exc:
                outcome, status = exc.provider_code or type(exc).__name__, exc.http_status
                raise
            else:
                outcome, tx_id = SUCCESS, tx_id or str(getattr(parsed, "tx_id", "") or "")
                return parsed
            finally:
                measured.finished(outcome, status)
                _log_call(call, tx_id, outcome, time.perf_counter() - started)

    def _log_built(self, call: _Call) -> None:
        logger.debug(
            "nicepay %s built for the browser: referenceNo=%s tXid=%s",
            call.operation,
            call.reference_no,
            call.tx_id,
            extra={
                "operation": call.operation,
                "reference_no": call.reference_no,
                "tx_id": call.tx_id,
            },
        )


def _log_call(call: _Call, tx_id: str, result_cd: str, elapsed: float) -> None:
    level = logging.INFO if result_cd == SUCCESS else logging.WARNING
    elapsed_ms = round(elapsed * 1000, 1)
    logger.log(
        level,
        "nicepay %s referenceNo=%s tXid=%s resultCd=%s elapsed=%.1fms",
        call.operation,
        call.reference_no,
        tx_id,
        result_cd,
        elapsed_ms,
        extra={
            "operation": call.operation,
            "reference_no": call.reference_no,
            "tx_id": tx_id,
            "result_cd": result_cd,
            "elapsed_ms": elapsed_ms,
        },
    )
