"""The inbound journal: every request to an inbound endpoint, refused or accepted, for a while.

Unlike ``rejected_event`` a row needs no matching instance, so requests for unknown transactions
and unparseable or oversized bodies are kept too. Anyone can send such requests, so the journal
is kept for a retention period only: :meth:`InboundJournal.prune` deletes rows older than a
cut-off, a batch at a time so that no single transaction holds the table for long.

The journal keeps its ``inbound_attempt`` table in the engine's database, declared on the same
sqlmodel metadata, and the schema's migrations create it with the engine's tables.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Required, TypedDict, Unpack

from sqlalchemy import Connection, Text, bindparam, delete, insert, select
from sqlmodel import Field, SQLModel

from fsm._payload import clean_payload, read_payload
from fsm.clock import require_aware
from fsm.errors import InvalidInstanceData
from fsm.store.protocol import Along
from fsm.store.sql import SqlStore
from fsm.store.tables import UtcDateTime

DEFAULT_RETENTION = timedelta(days=30)
"""How long inbound requests are kept unless the operator says otherwise."""
PRUNE_BATCH = 5000
"""Rows deleted per transaction by :meth:`InboundJournal.prune`."""


class InboundAttemptRow(SQLModel, table=True):
    """One request to an inbound endpoint (a notification, a callback), refused or accepted.

    Rows are only ever inserted. Unlike ``rejected_event`` it needs no matching instance, so
    requests for unknown transactions and unparseable or oversized bodies are kept too.
    """

    __tablename__ = "inbound_attempt"

    id: int | None = Field(default=None, primary_key=True)
    received_at: datetime = Field(sa_type=UtcDateTime, index=True)
    endpoint: str = Field(max_length=32)
    outcome: str = Field(max_length=16)
    status_code: int
    error: str | None = Field(default=None, max_length=64)
    reason: str = Field(sa_type=Text)
    instance_id: str | None = Field(default=None, max_length=64, index=True)
    parameters: str = Field(sa_type=Text)
    body_bytes: int
    client_ip: str | None = Field(default=None, max_length=64)


INBOUND_TABLE = InboundAttemptRow.__table__  # type: ignore[attr-defined]

_T = INBOUND_TABLE
_OLDEST = (
    select(_T.c.id)
    .where(_T.c.received_at < bindparam("before"))
    .order_by(_T.c.received_at)
    .limit(PRUNE_BATCH)
)
_INSERT = insert(_T)
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


class InboundEntry(TypedDict, total=False):
    """One inbound request, as :meth:`InboundJournal.writer` takes it."""

    received_at: Required[datetime]
    endpoint: Required[str]
    outcome: Required[str]
    status_code: Required[int]
    error: str | None
    reason: str
    instance_id: str | None
    parameters: Mapping[str, Any] | None
    body_bytes: int
    client_ip: str | None


class InboundJournal:
    """The inbound requests kept in the database of one :class:`~fsm.store.sql.SqlStore`."""

    def __init__(self, store: SqlStore) -> None:
        """Keep requests in ``store``'s database."""
        self._store = store

    def record(self, **entry: Unpack[InboundEntry]) -> None:
        """Append one inbound request in a transaction of its own; takes what :meth:`writer`
        takes."""
        self.commit(self.writer(**entry))

    def commit(self, write: Along) -> None:
        """Run ``write`` (a :meth:`writer`'s) in a transaction of its own."""
        with self._store.transaction() as conn:
            write(conn)

    def writer(self, *, also: Along | None = None, **entry: Unpack[InboundEntry]) -> Along:
        """What appends one inbound request in the caller's transaction; whatever it held, it is
        stored.

        ``also`` writes what the request led to (a status check asked for) in the same
        transaction, so the request is journalled if and only if that is written too. The
        writer may ride along with the step the request fires (:meth:`fsm.engine.Engine.fire`).

        Secret-looking parameters (``merchantToken``, ...) are stored as ``[redacted]``; the
        caller leaves out what it must not keep (an oversized body: its size only). Text is
        stored as PostgreSQL can hold it (no NUL characters) and cut to its column's size, and
        parameters too large for a payload are replaced by a note of their size.

        Raises:
            InvalidInstanceData: ``received_at`` is naive; nothing was stored.
        """
        values = {
            "received_at": require_aware(entry["received_at"]),
            "endpoint": _storable(entry["endpoint"], 32) or "",
            "outcome": _storable(entry["outcome"], 16) or "",
            "status_code": int(entry["status_code"]),
            "error": _storable(entry.get("error"), 64),
            "reason": _storable(entry.get("reason", ""), 2000) or "",
            "instance_id": _storable(entry.get("instance_id"), 64),
            "parameters": _parameters(entry.get("parameters")),
            "body_bytes": int(entry.get("body_bytes", 0)),
            "client_ip": _storable(entry.get("client_ip"), 64),
        }

        def write(conn: Connection) -> None:
            conn.execute(_INSERT, values)
            if also is not None:
                also(conn)

        return write

    def latest(self, *, limit: int = 100, instance_id: str | None = None) -> list[InboundAttempt]:
        """The latest stored requests, newest first (only ``instance_id``'s, if given)."""
        query = select(_T)
        if instance_id is not None:
            query = query.where(_T.c.instance_id == instance_id)
        query = query.order_by(_T.c.id.desc()).limit(limit)
        with self._store.connection() as conn:
            return [_attempt(row._asdict()) for row in conn.execute(query)]

    def prune(self, before: datetime) -> int:
        """Delete the requests received before ``before``; returns how many went.

        Rows go :data:`PRUNE_BATCH` at a time, each batch its own transaction, so endpoints
        recording meanwhile wait for one batch at most.

        Raises:
            InvalidInstanceData: ``before`` is naive; nothing was deleted.
        """
        cut_off = {"before": require_aware(before)}
        pruned = 0
        while True:
            with self._store.transaction() as conn:
                deleted = conn.execute(_DELETE_BATCH, cut_off).rowcount
            pruned += deleted
            if deleted < PRUNE_BATCH:
                return pruned


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


__all__ = [
    "DEFAULT_RETENTION",
    "INBOUND_TABLE",
    "PRUNE_BATCH",
    "InboundAttempt",
    "InboundAttemptRow",
    "InboundEntry",
    "InboundJournal",
]
