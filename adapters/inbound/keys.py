"""The idempotency key of a browser return, from the server's clock alone.

A notification is keyed on what its token verified (:mod:`adapters.wallets.answers`). A
browser return is verified by nothing, so any parameter of it may be varied at will: it is keyed
on the throttle slot it arrived in, and a payment's returns within one slot cost at most one
status check.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

CALLBACK_INTERVAL = timedelta(seconds=30)
"""A payment's browser returns within one slot of this length cost at most one status check."""


def callback_key(now: datetime) -> str:
    """The key of a browser return at ``now``: the start of its throttle slot, in UTC."""
    step = int(CALLBACK_INTERVAL.total_seconds())
    seconds = int(now.timestamp())
    start = datetime.fromtimestamp(seconds - seconds % step, UTC)
    return f"callback:{start:%Y%m%dT%H%M%SZ}"
