"""The inbound journal: every request to an inbound endpoint, refused or accepted, for a while.

Unlike ``rejected_event`` a row needs no matching instance, so requests for unknown transactions
and unparseable or oversized bodies are kept too. Anyone can send such requests, so the journal
is kept for a retention period only: :func:`prune` deletes rows older than a cut-off, a batch at
a time so that no single transaction holds the table for long.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select

from fsm._payload import clean_payload, read_payload
from fsm.clock import require_aware
from fsm.errors import InvalidInstanceData
from fsm.store.tables import INBOUND_TABLE

DEFAULT_RETENTION = timedelta(days=30)
"""How long inbound requests are kept unless the operator says otherwise."""
PRUNE_BATCH = 5000
"""Rows deleted per transaction by :func:`prune`."""

_T = INBOUND_TABLE
_OLDEST = (
    select(_T.c.id)
    .where(_T.c.received_at < bindparam("before"))
    .order_by(_T.c.received_at)
    .limit(PRUNE_BATCH)
)
_DELETE_BATCH = delete(_T).where(_T.c.id.in_(_OLDEST.scalar_subquery()))


@dataclass(frozen=True)
class InboundAttempt:
    """A stored inbound request: what arrived, what it was answered, and why."""

    id: int
    received_at: datetime
    endpoint: str
    outcome: str
    status_code: int
    error: str | None
    reason: str
    instance_id: str | None
    parameters: dict[str, Any]
    body_bytes: int
    client_ip: str | None


def record(
    conn: Connection,
    *,
    received_at: datetime,
    endpoint: str,
    outcome: str,
    status_code: int,
    error: str | None,
    reason: str,
    instance_id: str | None,
    parameters: Mapping[str, Any] | None,
    body_bytes: int,
    client_ip: str | None,
) -> None:
    """Append one request (see :meth:`fsm.store.sql.SqlStore.record_inbound`).

    Raises:
        InvalidInstanceData: ``received_at`` is naive; nothing was stored.
    """
    values = {
        "received_at": require_aware(received_at),
        "endpoint": _storable(endpoint, 32) or "",
        "outcome": _storable(outcome, 16) or "",
        "status_code": int(status_code),
        "error": _storable(error, 64),
        "reason": _storable(reason, 2000) or "",
        "instance_id": _storable(instance_id, 64),
        "parameters": _parameters(parameters),
        "body_bytes": int(body_bytes),
        "client_ip": _storable(client_ip, 64),
    }
    conn.execute(insert(_T), values)


def latest(conn: Connection, *, limit: int, instance_id: str | None) -> list[InboundAttempt]:
    """The latest requests, newest first (only ``instance_id``'s, if given)."""
    query = select(_T)
    if instance_id is not None:
        query = query.where(_T.c.instance_id == instance_id)
    query = query.order_by(_T.c.id.desc()).limit(limit)
    return [_attempt(row._asdict()) for row in conn.execute(query)]


def prune_batch(conn: Connection, before: datetime) -> int:
    """Delete up to :data:`PRUNE_BATCH` of the rows received before ``before``; how many went."""
    return conn.execute(_DELETE_BATCH, {"before": require_aware(before)}).rowcount


def _attempt(row: Mapping[str, Any]) -> InboundAttempt:
    values = dict(row)
    values["parameters"] = read_payload(values["parameters"])
    return InboundAttempt(**values)


def _storable(text: str | None, limit: int) -> str | None:
    """``text`` as any database stores it: no NUL, no lone surrogate, at most ``limit`` long."""
    if text is None:
        return None
    safe = str(text).encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
    return safe[:limit]


def _parameters(parameters: Mapping[str, Any] | None) -> str:
    """The parameters as JSON text, secrets redacted; only their size when they are too large."""
    try:
        cleaned = clean_payload(parameters)
    except (InvalidInstanceData, UnicodeError):
        text = json.dumps(dict(parameters or {}), default=str)
        cleaned = {"unstored_parameters": f"{len(text)} characters"}
    return json.dumps(cleaned, sort_keys=True, separators=(",", ":"))  # ASCII: \u escapes


__all__ = ["DEFAULT_RETENTION", "PRUNE_BATCH", "InboundAttempt", "latest", "prune_batch", "record"]
