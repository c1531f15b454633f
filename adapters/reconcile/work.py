"""Status checks as durable work: what an inbound request asks for, and what a worker claims.

A notification or a browser return that calls for a status check does not ask NICEPAY itself:
it records a row in ``status_work`` and answers. A worker (:mod:`adapters.reconcile.worker`)
claims the row, runs the check and marks it ``done``; a failed check is due again after a
backoff, and after its last attempt it is ``abandoned``: the payment's status-check deadline
still asks, and the row tells a person what went wrong.

A payment has at most one ``pending`` row (a partial unique index): while one waits, any number
of further requests add no row (they only make it due now), so many callbacks cost one
inquiry. A row a worker has taken
is ``running``, and no longer absorbs requests: what arrives during the inquiry may postdate its
answer, so it is asked about again. A claim is a lease, as the reconcilers' and the relay's are
(:mod:`fsm.store.leases`): ``claimed_by`` and ``claimed_until``, so a stopped worker's rows go
to another once it lapses. PostgreSQL claims a batch with ``FOR UPDATE SKIP LOCKED``; SQLite
claims each row with a compare-and-set, behind the file's one writer.

The table is declared on the engine's sqlmodel metadata, as the call journal's is, and the
schema's migrations create it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    Index,
    Text,
    and_,
    bindparam,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, SQLModel

from adapters.reconcile.hints import is_tx_id
from fsm.clock import require_aware
from fsm.errors import InvalidInstanceData
from fsm.store.sql import SqlStore
from fsm.store.tables import UtcDateTime, partial_unique_index


class WorkStatus(StrEnum):
    """Where a status check's work stands."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    ABANDONED = "abandoned"


class StatusWorkRow(SQLModel, table=True):
    """One status check a request asked for, and how far a worker got with it."""

    __tablename__ = "status_work"
    __table_args__ = (
        # One waiting check per payment: the database, not a read before the insert, absorbs
        # the requests of every replica while it waits.
        partial_unique_index("ux_status_work_pending", "instance_id", where="status = 'pending'"),
        Index("ix_status_work_due", "status", "next_attempt_at"),
    )

    id: str = Field(primary_key=True, max_length=36)
    instance_id: str = Field(foreign_key="flow_instance.id", max_length=64)
    status: str = Field(default="pending", max_length=16)
    tx_id_hint: str | None = Field(default=None, max_length=64)
    """The tXid a browser return named, asked about alone (:mod:`adapters.reconcile.hints`)."""
    call_key: str | None = Field(default=None, max_length=200)
    """The key the inquiry is recorded under (a throttle slot, a refused notification's key)."""
    attempts: int = 0
    created_at: datetime = Field(sa_type=UtcDateTime)
    next_attempt_at: datetime = Field(sa_type=UtcDateTime)
    claimed_by: str | None = Field(default=None, max_length=64)
    claimed_until: datetime | None = Field(default=None, sa_type=UtcDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    last_error: str | None = Field(default=None, sa_type=Text)
    trace_parent: str | None = Field(default=None, max_length=64)
    """The first asking request's W3C ``traceparent`` (no payment data: trace and span ids)."""


STATUS_WORK_TABLE = StatusWorkRow.__table__  # type: ignore[attr-defined]
_W = STATUS_WORK_TABLE
_OTHER = _W.alias("other")


class CheckRequest(NamedTuple):
    """A status check an inbound request calls for."""

    instance_id: str
    tx_id_hint: str | None = None
    """The tXid a browser return named, asked about alone."""
    call_key: str | None = None
    """The key the inquiry is recorded under."""
    trace_parent: str | None = None
    """The W3C ``traceparent`` of the request's span, so the check's span links back to it."""


class StatusWorkItem(NamedTuple):
    """A stored status check and how far it got."""

    id: str
    instance_id: str
    status: WorkStatus
    tx_id_hint: str | None
    call_key: str | None
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    trace_parent: str | None = None
    """The span of the request that asked first, which the check's span links to."""


_COLUMNS = (
    _W.c.id,
    _W.c.instance_id,
    _W.c.status,
    _W.c.tx_id_hint,
    _W.c.call_key,
    _W.c.attempts,
    _W.c.next_attempt_at,
    _W.c.last_error,
    _W.c.trace_parent,
)
_LAPSED = and_(_W.c.status == WorkStatus.RUNNING.value, _W.c.claimed_until < bindparam("now"))
_DUE = or_(
    and_(_W.c.status == WorkStatus.PENDING.value, _W.c.next_attempt_at <= bindparam("now")),
    _LAPSED,
)
_CLAIM_ONE = (
    update(_W)
    .where(_W.c.id == bindparam("work_id"), _DUE)
    .values(
        status=WorkStatus.RUNNING.value,
        claimed_by=bindparam("owner"),
        claimed_until=bindparam("until"),
    )
)
_CLAIM_MANY = (
    update(_W)
    .where(_W.c.id.in_(bindparam("ids", expanding=True)))
    .values(
        status=WorkStatus.RUNNING.value,
        claimed_by=bindparam("owner"),
        claimed_until=bindparam("until"),
    )
)
_HELD = and_(
    _W.c.id == bindparam("work_id"),
    _W.c.status == WorkStatus.RUNNING.value,
    _W.c.claimed_by == bindparam("owner"),
)
_NO_OTHER_PENDING = ~exists().where(
    _OTHER.c.instance_id == _W.c.instance_id, _OTHER.c.status == WorkStatus.PENDING.value
)


def _inherit_attempts(greatest: Any) -> Any:
    failed = select(_OTHER.c.instance_id, _OTHER.c.attempts).where(
        _OTHER.c.id == bindparam("work_id")
    )
    return (
        update(_W)
        .where(
            _W.c.status == WorkStatus.PENDING.value,
            _W.c.instance_id == failed.with_only_columns(_OTHER.c.instance_id).scalar_subquery(),
        )
        .values(
            attempts=greatest(
                _W.c.attempts,
                failed.with_only_columns(_OTHER.c.attempts + 1).scalar_subquery(),
            )
        )
    )


_INHERIT_ATTEMPTS = {False: _inherit_attempts(func.max), True: _inherit_attempts(func.greatest)}
"""A pending check takes on a superseded one's attempts (SQLite's scalar ``max``, else
``greatest``), keyed by whether the database is PostgreSQL."""


_ASKED = (
    "id",
    "instance_id",
    "status",
    "tx_id_hint",
    "call_key",
    "trace_parent",
    "attempts",
    "created_at",
    "next_attempt_at",
)
"""The columns a request asking for a check writes."""


class _PendingExists(Exception):
    """A request's pending row for the payment committed before a retry's."""


def _earlier(dialect: str, kept: Any, asked: Any) -> Any:
    """The earlier of two times (SQLite's scalar ``min``: it keeps them as sortable text)."""
    return func.least(kept, asked) if dialect == "postgresql" else func.min(kept, asked)


def _item(row: Any) -> StatusWorkItem:
    work_id, instance_id, status, hint, key, attempts, next_at, error, parent = row[:9]
    return StatusWorkItem(
        work_id, instance_id, WorkStatus(status), hint, key, attempts, next_at, error, parent
    )


class StatusWork:
    """The status checks of one :class:`~fsm.store.sql.SqlStore`, asked for and claimed."""

    def __init__(self, store: SqlStore) -> None:
        """Keep the work in ``store``'s database, beside the payments it concerns."""
        self._store = store
        self._ask = _ask_statement(store.dialect)

    def request(self, check: CheckRequest, now: datetime) -> None:
        """Ask for ``check``, due at ``now``, in a transaction of its own (see :meth:`writer`).

        Raises:
            InvalidInstanceData: ``now`` is naive.
        """
        with self._store.transaction() as conn:
            self.writer(check, now)(conn)

    def writer(self, check: CheckRequest, now: datetime) -> Callable[[Connection], None]:
        """What asks for ``check``, due at ``now``, in the caller's transaction on a connection.

        Where a check already waits for the payment, it is kept and made due at ``now`` if it
        was due later (a new request is a reason to ask now, not after a failed attempt's
        backoff; one due earlier keeps its place in the queue), under the key it had, or else
        the new ``call_key``. It keeps the ``tx_id_hint`` it was asked about first: a later
        return (a forged one, perhaps) cannot take a waiting genuine one's place, and each return
        still buys one inquiry at most; the hints it did not ask about stay recorded for the
        payment's next checks (:mod:`adapters.reconcile.hints`). A hint that is not a
        well-formed tXid is never stored.

        Raises:
            InvalidInstanceData: ``now`` is naive.
        """
        values = {
            "id": str(uuid.uuid4()),
            "instance_id": check.instance_id,
            "status": WorkStatus.PENDING.value,
            "tx_id_hint": check.tx_id_hint if is_tx_id(check.tx_id_hint) else None,
            "call_key": check.call_key,
            "trace_parent": check.trace_parent,
            "attempts": 0,
            "created_at": require_aware(now),
            "next_attempt_at": now,
        }
        statement = self._ask

        def write(conn: Connection) -> None:
            conn.execute(statement, values)

        return write

    def items(
        self, *, instance_id: str | None = None, status: WorkStatus | None = None, limit: int = 100
    ) -> list[StatusWorkItem]:
        """Stored work, oldest first; of one payment or status if given."""
        query = select(*_COLUMNS).order_by(_W.c.created_at, _W.c.id).limit(limit)
        if instance_id is not None:
            query = query.where(_W.c.instance_id == instance_id)
        if status is not None:
            query = query.where(_W.c.status == WorkStatus(status).value)
        with self._store.connection() as conn:
            return [_item(row) for row in conn.execute(query)]

    def claim(
        self, now: datetime, *, owner: str, lease: timedelta, limit: int = 20
    ) -> list[StatusWorkItem]:
        """Claim up to ``limit`` due checks (pending, or running on a lapsed claim), oldest first.

        Each stays ``owner``'s until it is settled (:meth:`done`, :meth:`failed`) or ``lease``
        has passed.

        Raises:
            InvalidInstanceData: ``now`` is naive or ``lease`` is not positive.
        """
        if lease <= timedelta(0):
            raise InvalidInstanceData(f"a claim's lease must be positive, not {lease}")
        values = {"now": require_aware(now), "owner": owner, "until": now + lease}
        due = select(*_COLUMNS).where(_DUE).order_by(_W.c.next_attempt_at).limit(limit)
        with self._store.connection() as conn:  # an idle worker polls without a write lock
            if conn.execute(due.limit(1), values).first() is None:
                return []
        with self._store.transaction() as conn:
            if self._store.dialect == "postgresql":
                rows = conn.execute(due.with_for_update(skip_locked=True, of=_W), values).all()
                if rows:
                    conn.execute(_CLAIM_MANY, {**values, "ids": [row[0] for row in rows]})
                return [_item(row) for row in rows]
            rows = conn.execute(due, values).all()
            return [
                _item(row)
                for row in rows
                if conn.execute(_CLAIM_ONE, {**values, "work_id": row[0]}).rowcount == 1
            ]

    def done(self, work_id: str, *, owner: str, now: datetime) -> bool:
        """Mark ``owner``'s claimed check done; false when the claim was no longer its own."""
        finished = {
            "status": WorkStatus.DONE.value,
            "attempts": _W.c.attempts + 1,
            "finished_at": require_aware(now),
            "claimed_by": None,
            "claimed_until": None,
        }
        with self._store.transaction() as conn:
            return _settle(conn, work_id, owner, finished)

    def failed(
        self, work_id: str, *, owner: str, error: str, now: datetime, retry_at: datetime | None
    ) -> bool:
        """Record a failed check: due again at ``retry_at``, or never (``None``: abandoned).

        A check to retry whose payment meanwhile got another pending one is done instead: the
        newer one asks. False when the claim was no longer ``owner``'s.
        """
        base = {"attempts": _W.c.attempts + 1, "last_error": error[:500]}
        base |= {"claimed_by": None, "claimed_until": None}
        given_up = {**base, "status": WorkStatus.ABANDONED.value, "finished_at": require_aware(now)}
        if retry_at is None:
            with self._store.transaction() as conn:
                return _settle(conn, work_id, owner, given_up)
        # A retry asks under no key: the failed attempt's intent holds the key already.
        again = {**base, "status": WorkStatus.PENDING.value, "next_attempt_at": retry_at}
        again["call_key"] = None
        try:
            with self._store.transaction(refused=_PendingExists) as conn:
                if _settle(conn, work_id, owner, again, _NO_OTHER_PENDING):
                    return True
        except _PendingExists:  # a request's pending row committed first: it asks instead
            pass
        superseded = {**base, "status": WorkStatus.DONE.value, "finished_at": now}
        with self._store.transaction() as conn:
            # The newer check inherits the attempts made, so that requests arriving while
            # NICEPAY fails cannot keep a payment's checks from ever being given up.
            conn.execute(
                _INHERIT_ATTEMPTS[self._store.dialect == "postgresql"], {"work_id": work_id}
            )
            return _settle(conn, work_id, owner, superseded)


def _ask_statement(dialect: str) -> Any:
    """The insert that asks for a check, or makes the payment's waiting one due (see
    :meth:`StatusWork.writer`); built once, since every request that asks runs it."""
    insert = (
        (postgresql if dialect == "postgresql" else sqlite)
        .insert(_W)
        .values({name: bindparam(name) for name in _ASKED})
    )
    return insert.on_conflict_do_update(
        index_elements=[_W.c.instance_id],
        index_where=_W.c.status == WorkStatus.PENDING.value,
        set_={
            "next_attempt_at": _earlier(
                dialect, _W.c.next_attempt_at, insert.excluded.next_attempt_at
            ),
            "tx_id_hint": func.coalesce(_W.c.tx_id_hint, insert.excluded.tx_id_hint),
            "call_key": func.coalesce(_W.c.call_key, insert.excluded.call_key),
        },
    )


def _settle(
    conn: Connection, work_id: str, owner: str, values: dict[str, Any], *where: Any
) -> bool:
    statement = update(_W).where(_HELD, *where).values(values)
    return bool(conn.execute(statement, {"work_id": work_id, "owner": owner}).rowcount == 1)


__all__ = [
    "STATUS_WORK_TABLE",
    "CheckRequest",
    "StatusWork",
    "StatusWorkItem",
    "StatusWorkRow",
    "WorkStatus",
]
