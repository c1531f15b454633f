"""NICEPAY's failures as the project's typed provider errors, with one table for every ``resultCd``.

Each class below specialises a generic error of :mod:`fsm.errors`, so callers that only know the
generic tree keep working::

    ProviderUnavailable (retryable)
    ├── NicepayUnavailable      resultCd 1001-1004 (connection, socket, server, timeout), 9002 busy
    └── MalformedResponse       a 2xx answer that is not a JSON object with a usable resultCd
    ProviderRejected (not retryable)
    ├── DuplicateReference      9009: referenceNo already registered
    ├── InvalidToken            9010: merchantToken does not verify
    ├── MissingField            9013-9020, 9024-9028: "Undefined" field; .field
    ├── InvalidRequest          9007, 9008, 9022, 9023, 9031, 9301, 9751: our request is wrong
    ├── MerchantNotAllowed      9011, 9012, 9021: merchant ID or its NICEPAY setup
    ├── WalletRefused           9001, 9750, 9752: registration or the wallet itself failed
    └── CancelRefused           9314, 9319, 9321, 9334: the cancel rules said no

A code missing from :data:`RESULT_CODES` becomes a plain, non-retryable ``ProviderRejected``:
retrying a refusal nobody has documented is a guess.

A refund request the service refuses before sending anything (see :mod:`adapters.refunds`)::

    RefundError                 .payment_id, .request_id; nothing was sent
    ├── InvalidRefundRequest    a malformed request id, amount, reason or requester (a ValueError)
    ├── RefundRequestConflict   the request id was used with another amount; .recorded, .asked
    ├── RefundExceedsPayment    more than is left to refund; .amount, .refundable
    └── CancelNotAllowed        a documented cancel rule, or the payment's state, says no; .rule
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from fsm.errors import FsmError, ProviderError, ProviderRejected, ProviderUnavailable

PROVIDER: Final = "nicepay"


class NicepayUnavailable(ProviderUnavailable):
    """NICEPAY answered, but reported a connection, server or capacity problem on its side."""


class MalformedResponse(ProviderUnavailable):
    """The answer was not a JSON object carrying a usable result.

    The reference counts a non-JSON body as a transport failure, so this is retryable.
    """


class DuplicateReference(ProviderRejected):
    """``referenceNo`` was already registered (9009)."""


class InvalidToken(ProviderRejected):
    """NICEPAY did not accept the ``merchantToken`` (9010): wrong key, amount or timeStamp."""


class InvalidRequest(ProviderRejected):
    """A field of the request is malformed or inconsistent (amount, cartData, time, cancelType)."""


class MerchantNotAllowed(ProviderRejected):
    """The merchant ID is unknown or not set up for this pay method or duplicate check."""


class WalletRefused(ProviderRejected):
    """Registration or the e-wallet partner failed the transaction."""


class CancelRefused(ProviderRejected):
    """The cancel or refund is not allowed: amount, state or time window."""


class MissingField(ProviderRejected):
    """NICEPAY reported a required field as "Undefined" (missing).

    Attributes:
        field: The NICEPAY field name, read from ``resultMsg`` when it names one, otherwise the
            documented code order (which is unconfirmed); ``None`` when neither tells.
    """

    field: str | None = None


class RefundError(FsmError):
    """A refund request was refused before anything was sent to NICEPAY."""

    def __init__(self, message: str, *, payment_id: str, request_id: str) -> None:
        super().__init__(message)
        self.payment_id = payment_id
        self.request_id = request_id


class InvalidRefundRequest(RefundError, ValueError):
    """The request id, amount, reason or requester is malformed; nothing was stored."""


class RefundRequestConflict(RefundError):
    """The request id was already used for this payment with another amount."""

    def __init__(self, *, payment_id: str, request_id: str, recorded: str, asked: str) -> None:
        super().__init__(
            f"refund request {request_id!r} of {payment_id!r} was made for {recorded}, "
            f"not {asked}: use a new request id for another refund",
            payment_id=payment_id,
            request_id=request_id,
        )
        self.recorded = recorded
        self.asked = asked


class RefundExceedsPayment(RefundError):
    """The refund would take the refunded total past the amount paid; nothing was sent."""

    def __init__(self, *, payment_id: str, request_id: str, amount: str, refundable: str) -> None:
        super().__init__(
            f"refund request {request_id!r} of {payment_id!r} asks for {amount}, "
            f"but only {refundable} is left to refund",
            payment_id=payment_id,
            request_id=request_id,
        )
        self.amount = amount
        self.refundable = refundable


class CancelNotAllowed(RefundError):
    """A cancel rule the reference documents (a wallet's window or blackout, the 90 days) or
    the payment's state refuses the cancel; ``rule`` names it."""

    def __init__(self, message: str, *, payment_id: str, request_id: str, rule: str) -> None:
        super().__init__(message, payment_id=payment_id, request_id=request_id)
        self.rule = rule


@dataclass(frozen=True)
class ResultCode:
    """How one documented ``resultCd`` is raised."""

    error: type[ProviderError]
    retryable: bool
    meaning: str


#: The documented "Undefined" codes and the field each names, in the documented (unconfirmed) order.
UNDEFINED_FIELDS: Final = MappingProxyType(
    {
        "9013": "currency",
        "9014": "referenceNo",
        "9015": "goodsNm",
        "9016": "billingNm",
        "9017": "billingPhone",
        "9018": "billingEmail",
        "9019": "callBackUrl",
        "9020": "dbProcessUrl",
        "9024": "userIP",
        "9025": "billingCity",
        "9026": "billingState",
        "9027": "billingPostCd",
        "9028": "billingCountry",
    }
)

#: Every non-success ``resultCd`` of reference §6.5, with its error class and retry flag.
RESULT_CODES: Final = MappingProxyType(
    {
        "1001": ResultCode(NicepayUnavailable, True, "connection error"),
        "1002": ResultCode(NicepayUnavailable, True, "socket error"),
        "1003": ResultCode(NicepayUnavailable, True, "server error"),
        "1004": ResultCode(NicepayUnavailable, True, "timeout"),
        "9001": ResultCode(WalletRefused, False, "registration failed"),
        "9002": ResultCode(NicepayUnavailable, True, "server busy"),
        "9007": ResultCode(InvalidRequest, False, "amt missing"),
        "9008": ResultCode(InvalidRequest, False, "amount must be digits without decimals"),
        "9009": ResultCode(DuplicateReference, False, "referenceNo already exists"),
        "9010": ResultCode(InvalidToken, False, "invalid merchant token"),
        "9011": ResultCode(MerchantNotAllowed, False, "invalid MID"),
        "9012": ResultCode(MerchantNotAllowed, False, "pay method not activated"),
        "9021": ResultCode(MerchantNotAllowed, False, "duplicate-check configuration error"),
        "9022": ResultCode(InvalidRequest, False, "invalid cartData JSON"),
        "9023": ResultCode(InvalidRequest, False, "amt differs from the sum of cartData"),
        "9031": ResultCode(InvalidRequest, False, "date/time check failed"),
        "9301": ResultCode(InvalidRequest, False, "invalid cancel type"),
        "9314": ResultCode(CancelRefused, False, "cannot cancel"),
        "9319": ResultCode(CancelRefused, False, "cancel amount error"),
        "9321": ResultCode(CancelRefused, False, "cancel amount error"),
        "9334": ResultCode(CancelRefused, False, "cancellation period exceeds 90 days"),
        "9750": ResultCode(WalletRefused, False, "e-wallet: generate ID failed"),
        "9751": ResultCode(InvalidRequest, False, "e-wallet: invalid parameter"),
        "9752": ResultCode(WalletRefused, False, "e-wallet: payment failed"),
        **{
            code: ResultCode(MissingField, False, f"undefined field ({field})")
            for code, field in UNDEFINED_FIELDS.items()
        },
    }
)

_KNOWN_FIELDS = tuple(sorted(set(UNDEFINED_FIELDS.values()), key=len, reverse=True))
_NOT_FIELD_NAMES = frozenset({"undefined", "redacted", "parameter", "field", "null", "none"})
_QUOTED_NAME = re.compile(r"[\[\('\"`]\s*([A-Za-z][A-Za-z0-9_]*)\s*[\]\)'\"`]")


def missing_field_name(result_cd: str, result_msg: str) -> str | None:
    """The field an "Undefined" ``resultMsg`` names, falling back to the documented code order.

    Args:
        result_cd: The ``resultCd`` NICEPAY sent.
        result_msg: The ``resultMsg`` NICEPAY sent.

    Returns:
        A NICEPAY field name, or ``None`` when neither the message nor the table tells.
    """
    lowered = result_msg.lower()
    for name in _KNOWN_FIELDS:  # longest first, so "billingPostCd" wins over a shorter name
        if re.search(rf"(?<![A-Za-z]){name.lower()}(?![A-Za-z])", lowered):
            return name
    for quoted in _QUOTED_NAME.finditer(result_msg):
        if quoted.group(1).lower() not in _NOT_FIELD_NAMES:
            return quoted.group(1)
    return UNDEFINED_FIELDS.get(result_cd)


def error_for_result(
    result_cd: str, result_msg: str, *, operation: str, http_status: int | None
) -> ProviderError:
    """The typed error for a non-success ``resultCd``.

    Args:
        result_cd: The ``resultCd`` NICEPAY sent.
        result_msg: The ``resultMsg`` NICEPAY sent, already free of secrets.
        operation: The call that failed (``registration``, ``inquiry``, ...), for the message.
        http_status: The HTTP status of the answer.

    Returns:
        An error carrying ``provider_code``, ``provider_message`` and ``http_status``.
    """
    spec = RESULT_CODES.get(result_cd)
    if spec is None:
        return ProviderRejected(
            f"nicepay {operation} refused with undocumented resultCd {result_cd}: {result_msg}",
            provider=PROVIDER,
            http_status=http_status,
            provider_code=result_cd,
            provider_message=result_msg,
            retryable=False,
        )
    error = spec.error(
        f"nicepay {operation} failed: {result_cd} {spec.meaning}: {result_msg}",
        provider=PROVIDER,
        http_status=http_status,
        provider_code=result_cd,
        provider_message=result_msg,
        retryable=spec.retryable,
    )
    if isinstance(error, MissingField):
        error.field = missing_field_name(result_cd, result_msg)
    return error
