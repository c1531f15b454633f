"""What the audit chain covers, and the one canonical encoding both databases agree on.

Each log row's link covers the previous link and the row's :data:`LINK_FIELDS`; the instance
row's seal covers its latest link and its :data:`SEAL_FIELDS`. The encoding is a compact JSON
array of the fields in that order: strings, integers and nulls only, times as UTC ISO 8601 with
microseconds (what SQLite and PostgreSQL both keep), the payload as the exact text stored. So a
row reads back to the same bytes on either database, and no two different rows share them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

LINK_FIELDS: tuple[str, ...] = (
    "instance_id",
    "seq",
    "event",
    "source",
    "dest",
    "actor",
    "idempotency_key",
    "payload",
    "occurred_at",
    "fingerprint",
    "flow_version",
)
"""A log row's columns its link covers, in the order they are encoded (``payload`` as stored
text)."""

SEAL_FIELDS: tuple[str, ...] = (
    "id",
    "flow",
    "state",
    "version",
    "wallet",
    "amount",
    "currency",
    "reference_no",
    "tx_id",
    "mandate",
    "refunded_amount",
    "flow_version",
)
"""An instance row's columns its seal covers: its state, its version and its money fields."""

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode


def canonical(values: Sequence[Any]) -> bytes:
    """``values`` (in one of the field orders above) as the bytes a link or a seal covers.

    Raises:
        TypeError: a value is neither text, an integer, an aware time nor ``None``.
    """
    return _encode([v if type(v) in _AS_IS else _plain(v) for v in values]).encode()


_AS_IS = frozenset({str, int, type(None)})
"""Types encoded as they are, checked before the call a time or a subclass needs."""


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TypeError("a chained time must carry its zone")
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if value is None or isinstance(value, str | int):
        return value
    raise TypeError(f"cannot chain a {type(value).__name__}")


__all__ = ["LINK_FIELDS", "SEAL_FIELDS", "canonical"]
