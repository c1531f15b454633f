"""A refund request's input, checked before anything is stored (:func:`refund_request`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from adapters.errors import InvalidRefundRequest
from adapters.nicepay.messages import amount_string
from fsm.definition import Actor

MAX_PAYMENT_ID: Final = 64
"""An instance id's column is 64 characters."""
MAX_REQUEST_ID: Final = 64
MAX_REASON: Final = 255
"""``cancelMsg`` is AN 255."""
MAX_REQUESTER: Final = 100
REQUESTERS: Final = frozenset({Actor.MERCHANT, Actor.OPERATOR})


@dataclass(frozen=True)
class RefundRequest:
    """A checked refund request (see :func:`refund_request`)."""

    payment_id: str
    request_id: str
    amount: str | None
    """``None``: whatever is left to refund."""
    reason: str
    requested_by: str | None
    actor: Actor

    @property
    def key(self) -> str:
        """The key of its cancel intent and of its ``request_refund`` step."""
        return f"refund:{self.request_id}"


def refund_request(
    payment_id: str,
    *,
    request_id: str,
    amount: str | int | None = None,
    reason: str | None = None,
    requested_by: str | None = None,
    actor: Actor = Actor.MERCHANT,
) -> RefundRequest:
    """Check a refund request's input.

    Raises:
        InvalidRefundRequest: a field is malformed; nothing was stored.
    """

    def refuse(problem: str) -> InvalidRefundRequest:
        return InvalidRefundRequest(problem, payment_id=payment_id, request_id=str(request_id))

    if not _printable_word(payment_id, MAX_PAYMENT_ID):
        raise refuse(f"payment_id must be 1-{MAX_PAYMENT_ID} printable ASCII characters, no spaces")
    if not _printable_word(request_id, MAX_REQUEST_ID):
        raise refuse(f"request_id must be 1-{MAX_REQUEST_ID} printable ASCII characters, no spaces")
    if not _printable_text(reason or "", MAX_REASON):
        raise refuse(f"reason must be printable text of at most {MAX_REASON} characters")
    if requested_by is not None and not _printable_text(requested_by, MAX_REQUESTER, empty=False):
        raise refuse(f"requested_by must be 1-{MAX_REQUESTER} printable characters")
    if actor not in REQUESTERS:
        raise refuse(f"a refund is requested by the merchant or an operator, not {actor}")
    try:
        checked = _checked_amount(amount)
    except ValueError as error:
        raise refuse(str(error)) from None
    return RefundRequest(payment_id, request_id, checked, reason or "", requested_by, actor)


def _checked_amount(amount: str | int | None) -> str | None:
    if amount is None:
        return None
    text = amount_string(amount)
    if int(text) == 0:
        raise ValueError("a refund must be for more than 0")
    return str(int(text))  # no leading zeros: one spelling per amount


def _printable_word(value: object, limit: int) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= limit
        and all("!" <= char <= "~" for char in value)
    )


def _printable_text(value: object, limit: int, *, empty: bool = True) -> bool:
    return (
        isinstance(value, str)
        and (empty or bool(value))
        and len(value) <= limit
        and value.isprintable()
    )


__all__ = [
    "MAX_PAYMENT_ID",
    "MAX_REASON",
    "MAX_REQUESTER",
    "MAX_REQUEST_ID",
    "REQUESTERS",
    "RefundRequest",
    "refund_request",
]
