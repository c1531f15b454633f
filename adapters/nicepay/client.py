"""``NicepayClient``: the NICEPAY V2 Direct calls over an injected ``httpx.Client``.

The client is the one place where NICEPAY's failures become typed errors:

- ``httpx.TimeoutException`` -> :class:`~adapters.errors.ProviderTimeout` (retryable);
- any other ``httpx.TransportError`` -> :class:`~adapters.errors.ProviderUnavailable` (retryable);
- HTTP 5xx, 408 and 429 -> ``ProviderUnavailable`` (retryable), because a later try can succeed;
- any other non-2xx -> :class:`~adapters.errors.ProviderRejected` (not retryable): NICEPAY answers
  its documented errors inside a 2xx body, so another status means a wrong URL or a proxy refusal
  that repeating will not fix;
- a 2xx body that is not a JSON object with a ``resultCd`` ->
  :class:`~adapters.errors.MalformedResponse` (retryable: the reference counts a non-JSON body as
  a transport failure);
- ``resultCd`` other than ``"0000"`` -> the class of :data:`~adapters.nicepay.result_codes.RESULT_CODES`.

Only inquiry is retried, with bounded exponential backoff and a fresh timeStamp and token per try.
Registration is sent exactly once (:mod:`~adapters.wallets.registration` recovers it), cancel too:
a repeated partial cancel could refund twice. The payment step and the AstraPay calls are browser
steps: the client builds them and never sends them. The merchant key and the tokens never appear
in a log record or an error; ``resultMsg`` is scrubbed of both in case an echo carries them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, TypeVar

import httpx
from pydantic import BaseModel, SecretStr

from adapters.errors import ProviderError
from adapters.nicepay.config import NicepayCredentials
from adapters.nicepay.exchange import SUCCESS, fetch_payment_links, parse_response, send_json
from adapters.nicepay.messages import (
    PAY_METHOD_EWALLET,
    BrowserForm,
    CancelResponse,
    InquiryResponse,
    LinkEnableRequest,
    LinkInitiateRequest,
    PaymentStep,
    RegistrationRequest,
    RegistrationResponse,
    ShopeePayRedirect,
    amount_string,
)
from adapters.nicepay.tokens import (
    cancel_token,
    link_enable_token,
    link_initiate_token,
    nicepay_timestamp,
    registration_token,
)
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


@dataclass(frozen=True)
class InquiryRetry:
    """How often and how patiently an inquiry is retried after a retryable failure.

    Delays double from ``base_delay`` up to ``max_delay``, without jitter: one payment is polled
    by one caller, so there is no herd to spread, and fixed delays keep runs reproducible.

    Attributes:
        attempts: Total tries, the first included; 1 disables retrying.
        base_delay: Seconds to wait after the first failure.
        max_delay: The longest single wait, in seconds.
    """

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigurationError(f"inquiry retry needs at least 1 attempt, not {self.attempts}")
        if self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ConfigurationError("inquiry retry needs 0 <= base_delay <= max_delay")

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` failed tries (1 or more)."""
        return float(min(self.max_delay, self.base_delay * 2 ** (failures - 1)))


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
        timestamp = self._timestamp()
        token = registration_token(
            timestamp, self.imid, request.reference_no, request.amount, self._key
        )
        body = {
            "timeStamp": timestamp,
            "iMid": self.imid,
            **request.wire_fields(),
            "merchantToken": token,
        }
        call = _Call("registration", request.reference_no)
        return self._post(REGISTRATION_PATH, body, RegistrationResponse, call, token)

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
        timestamp = self._timestamp()
        fields = {
            "timeStamp": timestamp,
            "tXid": tx_id,
            "merchantToken": registration_token(timestamp, self.imid, reference_no, amt, self._key),
            "callBackUrl": callback_url,
        }
        if return_json:
            fields["returnJsonFormat"] = "1"
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
        call = _Call("payment_links", "", step.fields.get("tXid", ""))
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
        call = _Call("inquiry", reference_no, tx_id)
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
        timestamp = self._timestamp()
        token = cancel_token(timestamp, self.imid, tx_id, amt, self._key)
        body = {
            "timeStamp": timestamp,
            "tXid": tx_id,
            "iMid": self.imid,
            "payMethod": PAY_METHOD_EWALLET,
            "cancelType": "2" if partial else "1",
            "amt": amt,
            "referenceNo": reference_no,
            "cancelMsg": reason,
            "merchantToken": token,
        }
        call = _Call("cancel", reference_no, tx_id)
        return self._post(CANCEL_PATH, body, CancelResponse, call, token)

    def link_enable(self, request: LinkEnableRequest) -> BrowserForm:
        """Build the AstraPay account-link form (``linkEnable.do``, token T4) for the browser.

        Args:
            request: The link fields, extra undocumented fields included.

        Returns:
            A POST form; nothing is sent.
        """
        token = link_enable_token(self.imid, request.reference_no, request.billing_phone, self._key)
        self._log_built(_Call("link_enable", request.reference_no))
        return self._form(LINK_ENABLE_PATH, request.wire_fields(), token)

    def link_initiate(self, request: LinkInitiateRequest) -> BrowserForm:
        """Build the AstraPay mandate payment form (``linkInitiate.do``, token T5) for the browser.

        Args:
            request: The payment fields, ``mandateID`` and extra fields included.

        Returns:
            A POST form; nothing is sent.
        """
        token = link_initiate_token(self.imid, request.reference_no, request.amount, self._key)
        self._log_built(_Call("link_initiate", request.reference_no))
        return self._form(LINK_INITIATE_PATH, request.wire_fields(), token)

    @property
    def _key(self) -> SecretStr:
        return self._credentials.merchant_key

    def _timestamp(self) -> str:
        return nicepay_timestamp(self._clock.now())

    def _url(self, path: str) -> str:
        return self._credentials.url(path)

    def _form(self, path: str, fields: Mapping[str, str], token: str) -> BrowserForm:
        auth = {"timeStamp": self._timestamp(), "iMid": self.imid}
        return BrowserForm(url=self._url(path), fields={**auth, **fields, "merchantToken": token})

    def _inquire_once(self, call: _Call, amt: str) -> InquiryResponse:
        timestamp = self._timestamp()  # fresh per try: NICEPAY may check the request time (9031)
        token = registration_token(timestamp, self.imid, call.reference_no, amt, self._key)
        body = {
            "timeStamp": timestamp,
            "tXid": call.tx_id,
            "iMid": self.imid,
            "referenceNo": call.reference_no,
            "amt": amt,
            "merchantToken": token,
        }
        return self._post(INQUIRY_PATH, body, InquiryResponse, call, token)

    def _post(
        self, path: str, body: Mapping[str, str], model: type[R], call: _Call, token: str
    ) -> R:
        secrets = (self._key.get_secret_value(), token)

        def exchange() -> R:
            response = send_json(self._http, self._url(path), body, call.operation)
            return parse_response(response, model, call.operation, secrets=secrets)

        return self._logged(call, exchange)

    def _logged(self, call: _Call, exchange: Callable[[], R]) -> R:
        # One record per call, whatever happens: ids, resultCd and time, never a body.
        started = time.perf_counter()
        outcome, tx_id = "", call.tx_id
        try:
            parsed = exchange()
        except ProviderError as exc:
            outcome = exc.provider_code or type(exc).__name__
            raise
        else:
            outcome, tx_id = SUCCESS, tx_id or str(getattr(parsed, "tx_id", "") or "")
            return parsed
        finally:
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
