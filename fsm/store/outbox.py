"""The outbox's delivery state: what a relay claims, and what it marks delivered, retried or dead.

Events are written by the engine in the transaction of their step (:mod:`fsm.events`); this
module only moves their delivery on. An event is ``pending`` until a relay delivers it
(``delivered``) or gives up after its last attempt (``dead``); an operator may make it
``pending`` again (:meth:`Outbox.redeliver`).

Claims are leases, as the reconcilers' are (:mod:`fsm.store.leases`): ``claimed_by`` and
``claimed_until``, so a crashed relay's events go back to the others once the lease runs out.
PostgreSQL claims a batch with ``FOR UPDATE SKIP LOCKED``, so replicas take different events and
never wait on each other; SQLite claims each row with a compare-and-set, behind the file's one
writer. An event is only claimable while no earlier event of the same payment is pending: each
payment's events go out in order, one at a time (a dead one no longer holds the next back). A row
whose stored body is not an event is marked dead when claimed, with ``last_error`` saying so,
and listed (:meth:`Outbox.entries`, its ``event`` ``None``) for a person; it cannot be made
pending again (:meth:`Outbox.redeliver` refuses it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

from sqlalchemy import Connection, Select, and_, bindparam, exists, func, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from fsm.clock import require_aware
from fsm.errors import InvalidInstanceData
from fsm.events import Event
from fsm.store.sql import SqlStore
from fsm.store.tables import OUTBOX_TABLE

_O = OUTBOX_TABLE
_EARLIER = _O.alias("earlier")


class Delivery(StrEnum):
    """Where an event's delivery stands."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


class OutboxEntry(NamedTuple):
    """A stored event and its delivery.

    ``event`` is ``None`` when the stored body is not an event (``last_error`` says so once a
    relay has claimed it and marked it dead): listed for a person, never delivered.
    """

    event_id: str
    event: Event | None
    status: Delivery
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    delivered_at: datetime | None


logger = logging.getLogger(__name__)

_ENTRY_COLUMNS = (
    _O.c.body,
    _O.c.status,
    _O.c.attempts,
    _O.c.next_attempt_at,
    _O.c.last_error,
    _O.c.delivered_at,
)
_ORDER = (_O.c.created_at, _O.c.instance_id, _O.c.seq)
_UNCLAIMED = or_(_O.c.claimed_until.is_(None), _O.c.claimed_until < bindparam("now"))
_NONE_BEFORE = ~exists().where(
    _EARLIER.c.instance_id == _O.c.instance_id,
    _EARLIER.c.seq < _O.c.seq,
    _EARLIER.c.status == Delivery.PENDING.value,
)
_DUE = and_(
    _O.c.status == Delivery.PENDING.value,
    _O.c.next_attempt_at <= bindparam("now"),
    _UNCLAIMED,
    _NONE_BEFORE,
)
_CLAIM_ONE = (
    update(_O)
    .where(_O.c.id == bindparam("event_id"), _O.c.status == Delivery.PENDING.value, _UNCLAIMED)
    .values(claimed_by=bindparam("owner"), claimed_until=bindparam("until"))
)
_CLAIM_MANY = (
    update(_O)
    .where(_O.c.id.in_(bindparam("ids", expanding=True)))
    .values(claimed_by=bindparam("owner"), claimed_until=bindparam("until"))
)
_BURY = (
    update(_O)
    .where(_O.c.id == bindparam("event_id"))
    .values(
        status=Delivery.DEAD.value,
        attempts=_O.c.attempts + 1,
        last_error="unreadable: the stored body is not an event",
        claimed_by=None,
        claimed_until=None,
    )
)
_HELD = and_(_O.c.id == bindparam("event_id"), _O.c.claimed_by == bindparam("owner"))


def _due(limit: int) -> Select[Any]:
    return select(*_ENTRY_COLUMNS, _O.c.id).where(_DUE).order_by(*_ORDER).limit(limit)


def _entry(row: Any) -> OutboxEntry:
    """The row's entry; its ``event`` is ``None`` (logged) when its stored body is not one."""
    body, status, attempts, next_at, error, delivered_at, event_id = row[:7]
    try:
        event: Event | None = Event.from_json(body)
    except InvalidInstanceData as unreadable:
        logger.warning(
            "outbox row unreadable", extra={"event_id": event_id, "reason": str(unreadable)}
        )
        event = None
    return OutboxEntry(event_id, event, Delivery(status), attempts, next_at, error, delivered_at)


class Outbox:
    """The events of one :class:`~fsm.store.sql.SqlStore`, and their delivery."""

    def __init__(self, store: SqlStore) -> None:
        """Read and claim the events kept in ``store``'s database."""
        self._store = store

    def entries(
        self, *, status: Delivery | None = None, payment_id: str | None = None, limit: int = 100
    ) -> list[OutboxEntry]:
        """Stored events with their delivery, oldest first; of one status or payment if given.

        A row whose stored body is not an event is listed too, its ``event`` ``None``.
        """
        where: list[ColumnElement[bool]] = []
        if status is not None:
            where.append(_O.c.status == Delivery(status).value)
        if payment_id is not None:
            where.append(_O.c.instance_id == payment_id)
        query = select(*_ENTRY_COLUMNS, _O.c.id).where(*where).order_by(*_ORDER).limit(limit)
        with self._store.connection() as conn:
            return [_entry(row) for row in conn.execute(query)]

    def events(self, *, payment_id: str | None = None, limit: int = 10_000) -> list[Event]:
        """The stored events that read as events, oldest first, whatever their delivery."""
        entries = self.entries(payment_id=payment_id, limit=limit)
        return [entry.event for entry in entries if entry.event is not None]

    def count(self, status: Delivery) -> int:
        """How many events have ``status``."""
        query = select(func.count()).select_from(_O).where(_O.c.status == Delivery(status).value)
        with self._store.connection() as conn:
            return int(conn.execute(query).scalar_one())

    def claim(
        self, now: datetime, *, owner: str, lease: timedelta, limit: int = 100
    ) -> list[OutboxEntry]:
        """Claim up to ``limit`` due events, at most one per payment (its earliest pending one).

        Each stays ``owner``'s until it is settled (:meth:`delivered`, :meth:`failed`) or
        ``lease`` has passed. One whose stored body is not an event comes back dead already, its
        ``event`` ``None``: nothing is left to do with it.

        Raises:
            InvalidInstanceData: ``now`` is naive or ``lease`` is not positive.
        """
        if lease <= timedelta(0):
            raise InvalidInstanceData(f"a claim's lease must be positive, not {lease}")
        values = {"now": require_aware(now), "owner": owner, "until": now + lease}
        with self._store.transaction() as conn:
            if self._store.dialect == "postgresql":
                return _claim_skipping_locked(conn, values, limit)
            return _claim_each(conn, values, limit)

    def delivered(self, event_id: str, *, owner: str, now: datetime) -> bool:
        """Mark ``owner``'s claimed event delivered; false when the claim was no longer its own."""
        done = update(_O).where(_HELD)
        return self._settle(
            done.values(
                status=Delivery.DELIVERED.value,
                attempts=_O.c.attempts + 1,
                delivered_at=require_aware(now),
                last_error=None,
                claimed_by=None,
                claimed_until=None,
            ),
            event_id,
            owner,
        )

    def failed(self, event_id: str, *, owner: str, error: str, retry_at: datetime | None) -> bool:
        """Record a failed attempt: try again at ``retry_at``, or never (``None``: dead)."""
        status = Delivery.PENDING if retry_at is not None else Delivery.DEAD
        after = update(_O).where(_HELD)
        values: dict[str, Any] = {
            "status": status.value,
            "attempts": _O.c.attempts + 1,
            "last_error": error[:500],
            "claimed_by": None,
            "claimed_until": None,
        }
        if retry_at is not None:
            values["next_attempt_at"] = require_aware(retry_at)
        return self._settle(after.values(values), event_id, owner)

    def redeliver(self, event_id: str, *, now: datetime) -> bool:
        """Make an event pending again, due at ``now`` with its attempts reset; false if unknown.

        For an operator: a dead event once its consumer is repaired, or a delivered one again.

        Raises:
            InvalidInstanceData: its stored body is not an event, which no delivery can mend;
                nothing changed.
        """
        again = (
            update(_O)
            .where(_O.c.id == bindparam("event_id"))
            .values(
                status=Delivery.PENDING.value,
                attempts=0,
                next_attempt_at=require_aware(now),
                claimed_by=None,
                claimed_until=None,
            )
        )
        with self._store.transaction() as conn:
            body = conn.execute(select(_O.c.body).where(_O.c.id == event_id)).scalar_one_or_none()
            if body is None:
                return False
            _readable_body(event_id, body)
            return bool(conn.execute(again, {"event_id": event_id}).rowcount == 1)

    def _settle(self, statement: Any, event_id: str, owner: str) -> bool:
        with self._store.transaction() as conn:
            moved = conn.execute(statement, {"event_id": event_id, "owner": owner})
            return bool(moved.rowcount == 1)


def _readable_body(event_id: str, body: str) -> None:
    try:
        Event.from_json(body)
    except InvalidInstanceData as error:
        raise InvalidInstanceData(
            f"event {event_id!r} cannot be redelivered: its stored body is not an event ({error})"
        ) from None


def _claim_skipping_locked(
    conn: Connection, values: dict[str, Any], limit: int
) -> list[OutboxEntry]:
    """PostgreSQL: lock the due rows no other transaction holds, then claim them all."""
    query = _due(limit).with_for_update(skip_locked=True, of=_O)
    rows = conn.execute(query, values).all()
    if rows:
        conn.execute(_CLAIM_MANY, {**values, "ids": [row[6] for row in rows]})
    return _readable_or_dead(conn, rows)


def _claim_each(conn: Connection, values: dict[str, Any], limit: int) -> list[OutboxEntry]:
    """SQLite: claim each due row with a compare-and-set that fails if another claimed it."""
    rows = conn.execute(_due(limit), values).all()
    claimed = [
        row for row in rows if conn.execute(_CLAIM_ONE, {**values, "event_id": row[6]}).rowcount
    ]
    return _readable_or_dead(conn, claimed)


def _readable_or_dead(conn: Connection, rows: Sequence[Any]) -> list[OutboxEntry]:
    """The claimed rows' entries; one whose body is not an event is marked dead at once.

    Retrying cannot mend a stored body, and left pending it would fail every round's claim and
    hold its payment's later events back; dead, it is listed for a person and lets them pass.
    It is returned (its ``event`` ``None``) so the claimer counts it dead, as it now is.
    """
    entries = [_entry(row) for row in rows]
    for entry in entries:
        if entry.event is None:
            conn.execute(_BURY, {"event_id": entry.event_id})
    return entries


__all__ = ["Delivery", "Outbox", "OutboxEntry"]
