"""NICEPAY's ``resultCd`` table (reference §6.5): which error each non-success code raises.

A code missing from :data:`RESULT_CODES` becomes a plain, non-retryable ``ProviderRejected``:
retrying a refusal nobody has documented is a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from adapters.errors import (
    CancelRefused,
    DuplicateReference,
    FieldUndefined,
    InvalidRequest,
    InvalidToken,
    MerchantNotAllowed,
    NicepayUnavailable,
    ProviderError,
    ProviderRejected,
    WalletRefused,
)

PROVIDER: Final = "nicepay"
"""The ``provider`` every NICEPAY error names."""


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
            code: ResultCode(FieldUndefined, False, f"undefined field ({field})")
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
        An error carrying ``provider_code``, ``provider_message`` and ``http_status``;
        ``declined`` only for a documented refusal.
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
    if isinstance(error, FieldUndefined):
        error.field = missing_field_name(result_cd, result_msg)
    error.declined = not spec.retryable  # a documented refusal: NICEPAY did nothing
    return error


__all__ = [
    "PROVIDER",
    "RESULT_CODES",
    "UNDEFINED_FIELDS",
    "ResultCode",
    "error_for_result",
    "missing_field_name",
]
