"""Idempotency keys of inbound events, from verified or server-side values only.

A sender may add, drop or vary any parameter its token does not cover. A key built from such a
parameter would let every variation through as a new event, each a transition and an inquiry.
So a payment notification is keyed on what T3 verified (``iMid``, ``tXid``, the amount) and its
``status`` reduced to the two codes NICEPAY documents (§6.4); an account-link notification on
what T4 verified (``iMid``, ``referenceNo``, ``billingPhone``), its status, and whether it
carries a mandate (which decides its event). A browser return, which nothing verifies, is keyed
on the server's clock alone: the throttle slot it arrived in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

CALLBACK_INTERVAL = timedelta(seconds=30)
"""A payment's browser returns within one slot of this length cost at most one status check."""

_NOTIFIED_STATUS = {"0": "deposit", "1": "reversal"}
REVERSAL = "reversal"


def notified_status(params: Mapping[str, str]) -> str:
    """A notification's ``status`` as ``deposit``, ``reversal`` or ``other``."""
    return _NOTIFIED_STATUS.get(params.get("status", "").strip(), "other")


def notification_key(imid: str, tx_id: str, amount: str, params: Mapping[str, str]) -> str:
    """The key of a verified payment notification: the signed values and its status."""
    return f"notification:{imid}:{key_part(tx_id)}:{amount}:{notified_status(params)}"


def link_notification_key(imid: str, params: Mapping[str, str], *, with_mandate: bool) -> str:
    """The key of a verified account-link notification (T4's values, status, mandate or not)."""
    signed = f"{params.get('referenceNo', '')}:{params.get('billingPhone', '')}"
    status = "failed" if params.get("status", "0") != "0" else "linked"
    return f"link-notification:{imid}:{key_part(signed)}:{status}:{int(with_mandate)}"


def callback_key(now: datetime) -> str:
    """The key of a browser return at ``now``: the start of its throttle slot, in UTC."""
    step = int(CALLBACK_INTERVAL.total_seconds())
    seconds = int(now.timestamp())
    start = datetime.fromtimestamp(seconds - seconds % step, UTC)
    return f"callback:{start:%Y%m%dT%H%M%SZ}"


def key_part(value: str) -> str:
    """``value`` for an idempotency key: itself when short and printable, else its digest."""
    if len(value) <= 64 and value.isprintable():
        return value
    return "sha256-" + hashlib.sha256(value.encode("utf-8", "backslashreplace")).hexdigest()[:16]
