"""The audit chain as a user would write it by hand: what every floor computes and checks.

A floor that keeps a tamper-evident log has to do the engine's chain work too: each log row's
link is HMAC-SHA256 over the previous link and the row's content as a compact JSON array, and
the instance row's seal is HMAC-SHA256 over its latest link, ``|`` and its state, version and
money fields. Written here with ``hmac`` and ``json`` only; the seeded rows are chained by the
library (``fsm.chain``), so a floor that checks them proves the two encodings agree.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from fsm.chain import AuditKeys

KEY_ID = "bench"
SECRET = b"bench-audit-key-not-a-secret"
KEYS = AuditKeys((KEY_ID, SECRET))
"""The key every variant signs with: the library's stores and the floors alike."""

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def utc_text(moment: datetime) -> str:
    """A time as the chain encodes it."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def sqlite_text(stored: str) -> str:
    """A SQLite time (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC) as the chain encodes it."""
    return stored.replace(" ", "T", 1) + "+00:00"


def link(previous: str, values: Sequence[Any]) -> str:
    """A log row's link; ``values`` as the chain lists them, the time already text."""
    message = previous.encode() + _encode(list(values)).encode()
    return hmac.digest(SECRET, message, "sha256").hex()


def seal(latest: str, values: Sequence[Any]) -> str:
    """An instance row's seal over its latest link and its sealed fields."""
    message = latest.encode() + b"|" + _encode(list(values)).encode()
    return hmac.digest(SECRET, message, "sha256").hex()
