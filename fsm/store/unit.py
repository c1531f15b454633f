"""One event's transaction on the driver's own cursor, with SQL compiled once per dialect.

SQLAlchemy compiles each Core statement on the sqlmodel tables once, when the store is built, to
the driver's SQL text and the order of its positional parameters. A unit checks a connection out
of the store's pool and runs that text on the driver's cursor: per statement this skips
SQLAlchemy's execution context, parameter processing and result set-up (30-50 µs of Python
each), which was most of a durable fire's cost.

Everything the Core path guaranteed is enforced here the same way:

- the compare-and-set ``UPDATE`` on ``version`` must change exactly one row, else
  :class:`~fsm.errors.ConcurrentTransition`;
- the log's unique ``(instance_id, idempotency_key)`` refusing a row raises :class:`KeyTaken`;
- lock contention the database gave up on (SQLite's "database is locked", PostgreSQL's lock
  timeout, deadlock or serialisation failure) raises :class:`Contention`;
- on PostgreSQL the instance is read ``FOR UPDATE``;
- the unit commits whole or rolls back whole;
- a naive time is refused (:class:`~fsm.errors.InvalidInstanceData`) before anything is stored;
  times are stored as SQLAlchemy stores them (UTC text ``YYYY-MM-DD HH:MM:SS.ffffff`` on SQLite,
  ``timestamptz`` on PostgreSQL), so the ORM and Core reads elsewhere keep working, and read
  back as aware UTC.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from itertools import combinations
from operator import itemgetter
from types import TracebackType
from typing import Any, NamedTuple, cast

from sqlalchemy import Dialect, String, any_, bindparam, insert, null, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from fsm._payload import json_encoder, read_payload
from fsm._signals import Contention, KeyTaken, ReferenceTaken
from fsm.clock import as_utc, require_aware
from fsm.definition import BINDABLE_FIELDS
from fsm.errors import ConcurrentTransition, InstanceNotFound, InvalidInstanceData
from fsm.model import Instance, RejectedEvent, TransitionRecord
from fsm.store._connections import ConnectionSource
from fsm.store.tables import INSTANCE_COLUMNS, INSTANCE_TABLE, LOG_TABLE, REJECTED_TABLE

_LOG_FIELDS = tuple(TransitionRecord.__dataclass_fields__)
_REJECTED_FIELDS = tuple(RejectedEvent.__dataclass_fields__)
_REPLAY_FIELDS = ("instance_id", "seq", "event", "source", "dest", "actor", "fingerprint")
_CAS_FIELDS = ("dest", "seq", "deadline_at", "occurred_at", "instance_id", "expected")
"""The compare-and-set's parameters in the order a unit passes them; bound columns follow."""
_BOUND_SETS = tuple(
    names
    for size in range(len(BINDABLE_FIELDS) + 1)
    for names in combinations(sorted(BINDABLE_FIELDS), size)
)
REPLAY_CHUNK = 512
"""Instance ids per bulk replay query on SQLite, well under its limit on bound parameters."""
_CONTENTION_MARKERS = (
    "database is locked",
    "deadlock detected",
    "could not serialize",
    "lock timeout",
)
_CONTENTION_STATES = frozenset({"40001", "40P01", "55P03"})
"""PostgreSQL's serialisation failure, deadlock and lock-not-available SQLSTATEs."""

_LOAD = select(*INSTANCE_COLUMNS).where(INSTANCE_TABLE.c.id == bindparam("instance_id"))
_FIND_KEY = select(*(LOG_TABLE.c[name] for name in _LOG_FIELDS)).where(
    LOG_TABLE.c.instance_id == bindparam("instance_id"),
    LOG_TABLE.c.idempotency_key == bindparam("idempotency_key"),
)
_HISTORY = (
    select(*(LOG_TABLE.c[name] for name in _LOG_FIELDS))
    .where(LOG_TABLE.c.instance_id == bindparam("instance_id"))
    .order_by(LOG_TABLE.c.seq)
)
_INSERT_LOG = insert(LOG_TABLE).values({name: bindparam(name) for name in _LOG_FIELDS})
_INSERT_REJECTED = insert(REJECTED_TABLE).values(
    {name: bindparam(name) for name in _REJECTED_FIELDS}
)
_LOCK_ALL = (
    select(INSTANCE_TABLE.c.id)
    .where(INSTANCE_TABLE.c.id == any_(bindparam("ids", type_=ARRAY(String))))
    .order_by(INSTANCE_TABLE.c.id)
)


def _cas(bound: tuple[str, ...]) -> ClauseElement:
    """The compare-and-set, also setting ``bound`` columns (bind names may not be column names)."""
    table = INSTANCE_TABLE
    return (
        update(table)
        .where(table.c.id == bindparam("instance_id"), table.c.version == bindparam("expected"))
        .values(
            state=bindparam("dest"),
            version=bindparam("seq"),
            deadline_at=bindparam("deadline_at"),
            updated_at=bindparam("occurred_at"),
            **{name: bindparam(f"bound_{name}") for name in bound},
        )
    )


def _replay(ids: Any, *, with_time: bool) -> ClauseElement:
    columns = [LOG_TABLE.c[name] for name in _REPLAY_FIELDS]
    time = LOG_TABLE.c.occurred_at if with_time else null()
    return select(*columns, time).where(ids).order_by(LOG_TABLE.c.instance_id, LOG_TABLE.c.seq)


class Compiled(NamedTuple):
    """A statement as the driver takes it: SQL text, and how to order a unit's arguments."""

    sql: str
    arrange: Callable[[Sequence[Any]], Sequence[Any]] | None
    """Picks the arguments into the statement's order; ``None`` when they already are."""


def compile_positional(
    statement: ClauseElement, dialect: Dialect, names: Sequence[str]
) -> Compiled:
    """``statement`` compiled for ``dialect``, taking its parameters as ``names`` are ordered."""
    compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
    wanted = tuple(compiled.positiontup or ())
    if sorted(wanted) != sorted(names):
        raise ValueError(f"statement binds {wanted}, not {tuple(names)}")
    if wanted == tuple(names):
        return Compiled(compiled.string, None)
    return Compiled(compiled.string, itemgetter(*(names.index(name) for name in wanted)))


def positional_dialect(dialect: Dialect) -> Dialect:
    """``dialect``, or a copy speaking the driver's positional ``%s`` paramstyle."""
    if dialect.positional:
        return dialect
    return cast(Dialect, cast(Any, type(dialect))(paramstyle="format"))


class UnitSql:
    """A unit's statements compiled for one dialect, and what its driver's errors mean."""

    def __init__(self, dialect: Dialect) -> None:
        """Compile every statement once (the compare-and-set for each set of bound columns)."""
        positional = positional_dialect(dialect)
        self.dialect = dialect
        self.sqlite = dialect.name == "sqlite"
        load = _LOAD if self.sqlite else _LOAD.with_for_update()
        self.load = compile_positional(load, positional, ("instance_id",)).sql
        self.find_key = compile_positional(
            _FIND_KEY, positional, ("instance_id", "idempotency_key")
        ).sql
        self.history = compile_positional(_HISTORY, positional, ("instance_id",)).sql
        self.insert_log = compile_positional(_INSERT_LOG, positional, _LOG_FIELDS).sql
        self.insert_rejected = compile_positional(
            _INSERT_REJECTED, positional, _REJECTED_FIELDS
        ).sql
        self.cas = {
            bound: compile_positional(
                _cas(bound), positional, _CAS_FIELDS + tuple(f"bound_{n}" for n in bound)
            )
            for bound in _BOUND_SETS
        }
        self.lock_all = (
            "BEGIN IMMEDIATE"
            if self.sqlite
            else compile_positional(_LOCK_ALL.with_for_update(), positional, ("ids",)).sql
        )
        self._positional = positional
        self._replay: dict[tuple[int, bool], str] = {}
        dbapi = cast(Any, dialect).dbapi
        self.driver_error: type[Exception] = dbapi.Error
        self.integrity_error: type[Exception] = dbapi.IntegrityError
        self.write_time: Callable[[datetime], Any] = _sqlite_text if self.sqlite else require_aware
        self.read_time: Callable[[Any], Any] = _from_sqlite_text if self.sqlite else as_utc

    def replay(self, count: int, *, with_time: bool) -> str:
        """The bulk replay read for ``count`` ids (SQLite) or for any number (PostgreSQL)."""
        key = (count if self.sqlite else 0, with_time)
        sql = self._replay.get(key)
        if sql is None:
            if self.sqlite:  # one statement per size bucket; callers pad with repeated ids
                names = tuple(f"id_{n}" for n in range(count))
                ids = LOG_TABLE.c.instance_id.in_([bindparam(name) for name in names])
            else:
                names = ("ids",)
                ids = LOG_TABLE.c.instance_id == any_(bindparam("ids", type_=ARRAY(String)))
            statement = _replay(ids, with_time=with_time)
            sql = compile_positional(statement, self._positional, names).sql
            self._replay[key] = sql
        return sql

    def is_contention(self, error: BaseException | None) -> bool:
        """Whether the driver gave up waiting for a lock (a retry may succeed)."""
        if not isinstance(error, self.driver_error):
            return False
        if getattr(error, "sqlstate", None) in _CONTENTION_STATES:
            return True
        text = str(error).lower()
        return any(marker in text for marker in _CONTENTION_MARKERS)

    def is_disconnect(self, error: BaseException, connection: Any, cursor: Any) -> bool:
        """Whether ``error`` means the connection is gone (SQLAlchemy's test for the dialect)."""
        return isinstance(error, self.driver_error) and self.dialect.is_disconnect(
            cast(Any, error), connection, cursor
        )

    def instance(self, row: Sequence[Any]) -> Instance:
        """An instance from a row of :data:`~fsm.store.tables.INSTANCE_COLUMNS`: ten plain columns,
        three times, then the refunded total."""
        read = self.read_time
        return Instance(*row[:10], *[read(value) for value in row[10:13]], *row[13:])

    def record(self, row: Sequence[Any]) -> TransitionRecord:
        """A log record from a row of its columns in field order."""
        instance_id, seq, event, source, dest, actor, key, payload, occurred_at, fingerprint = row
        return TransitionRecord(
            instance_id,
            seq,
            event,
            source,
            dest,
            actor,
            key,
            read_payload(payload),  # a damaged row reads as empty and is named by replay
            self.read_time(occurred_at),
            fingerprint,
        )


class Unit:
    """One database transaction: ``with store.unit() as unit:`` commits on success, else rolls back.

    A driver connection is taken from ``connections`` on entry and given back on exit. When the
    first statement finds the connection gone (a restarted server, an ended session), the unit
    reconnects once and runs it again: nothing was sent on the dead connection, so nothing can be
    lost or applied twice. The fresh connection is a new one, never another idle one, which the
    same restart would have ended. Database failures leave the unit as the driver's own
    exceptions (``sqlite3.Error``, ``psycopg.Error``), not ``sqlalchemy.exc`` wrappers.
    """

    __slots__ = ("_broken", "_connection", "_connections", "_cursor", "_fresh", "_sql", "_token")

    def __init__(self, connections: ConnectionSource, sql: UnitSql) -> None:
        """Prepare a unit; the connection is taken on entry."""
        self._connections = connections
        self._sql = sql
        self._fresh = True
        self._broken = False

    def __enter__(self) -> Unit:
        """Take a connection."""
        self._checkout()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        """Commit, or roll back when the block raised; lock contention becomes Contention."""
        failure = error
        try:
            if error is None:
                self._connection.commit()
            else:
                self._rollback()
        except self._sql.driver_error as commit_error:
            # Nothing is stored when the server refused the commit (or the rollback failed).
            # But when the connection was lost during COMMIT the outcome is in doubt: the
            # server may have committed before the reply was lost. The caller sees an error
            # either way; retrying under the same idempotency key is safe, since a committed
            # step answers the retry as a duplicate instead of applying it again.
            self._rollback()
            failure = commit_error
            if self._sql.is_contention(commit_error):
                raise Contention() from commit_error
            raise
        finally:
            self._release(failure)
        if error is not None and self._sql.is_contention(error):
            raise Contention() from error

    def load(self, instance_id: str) -> Instance:
        """The instance, locked until the unit ends where the database supports it.

        Raises:
            InstanceNotFound: nothing is stored under ``instance_id``.
        """
        rows = self._execute(self._sql.load, (instance_id,)).fetchall()
        if not rows:
            raise InstanceNotFound(instance_id)
        return self._sql.instance(rows[0])

    def find_key(self, instance_id: str, key: str) -> TransitionRecord | None:
        """The transition already applied under ``key``, if any."""
        rows = self._execute(self._sql.find_key, (instance_id, key)).fetchall()
        return self._sql.record(rows[0]) if rows else None

    def apply(
        self,
        record: TransitionRecord,
        *,
        expected_version: int,
        deadline_at: datetime | None,
        bound: Mapping[str, str],
    ) -> None:
        """Compare-and-set the instance and append ``record``.

        Raises:
            ConcurrentTransition: the version moved. The exception leaves the unit's ``with``
                block, so the transaction rolls back whole.
            KeyTaken: the key is already logged; the unit rolls back whole too.
            InvalidInstanceData: a time is naive, or ``bound`` names a column no transition
                may set; nothing was stored.
            ReferenceTaken: a bound ``reference_no`` is another live instance's.
        """
        sql = self._sql
        names = tuple(sorted(bound)) if bound else ()
        cas = sql.cas.get(names)
        if cas is None:
            raise InvalidInstanceData(f"only {sorted(BINDABLE_FIELDS)} may be bound, not {names}")
        stamp = sql.write_time(record.occurred_at)
        due = None if deadline_at is None else sql.write_time(deadline_at)
        args: tuple[Any, ...] = (
            record.dest,
            record.seq,
            due,
            stamp,
            record.instance_id,
            expected_version,
        )
        if names:
            args += tuple(bound[name] for name in names)
        try:
            moved = self._execute(cas.sql, args if cas.arrange is None else cas.arrange(args))
        except sql.integrity_error:  # only the live-reference index can refuse an update
            raise ReferenceTaken() from None
        if moved.rowcount != 1:
            raise ConcurrentTransition(
                record.instance_id, record.source, record.event, expected_version
            )
        try:
            self._execute(sql.insert_log, _log_args(record, stamp))
        except sql.integrity_error:  # the unique (instance_id, idempotency_key) refused it
            raise KeyTaken() from None

    def reject(self, rejected: RejectedEvent) -> None:
        """Record an event that was not applied.

        Raises:
            InvalidInstanceData: its time is naive; nothing was stored.
        """
        stamp = self._sql.write_time(rejected.occurred_at)
        self._execute(self._sql.insert_rejected, _rejected_args(rejected, stamp))

    def lock_all(self, instance_ids: Iterable[str]) -> None:
        """Hold every given instance until the unit ends, before anything else is read.

        SQLite takes the database's write lock (``BEGIN IMMEDIATE``), so no other writer can move
        an instance between this unit's reads and writes. PostgreSQL locks the rows in id order,
        so two units locking overlapping sets queue instead of deadlocking.
        """
        if self._sql.sqlite:
            self._execute(self._sql.lock_all, ())
        else:
            self._execute(self._sql.lock_all, (sorted(set(instance_ids)),)).fetchall()

    def history(self, instance_id: str) -> list[TransitionRecord]:
        """The instance's applied transitions in order."""
        make = self._sql.record
        return [make(row) for row in self._execute(self._sql.history, (instance_id,)).fetchall()]

    def replay_rows(self, instance_ids: Sequence[str], *, with_time: bool) -> Iterator[Any]:
        """Log rows of the ids, ``(instance_id, seq, event, source, dest, actor, fingerprint,
        occurred_at)``, ordered by instance and sequence; ``occurred_at`` only ``with_time``."""
        sql = self._sql
        if not sql.sqlite:  # one array parameter takes any number of ids
            if instance_ids:
                cursor = self._execute(sql.replay(0, with_time=with_time), (list(instance_ids),))
                yield from self._times(cursor.fetchall(), with_time)
            return
        for start in range(0, len(instance_ids), REPLAY_CHUNK):
            chunk = list(instance_ids[start : start + REPLAY_CHUNK])
            size = 1 << (len(chunk) - 1).bit_length()  # a few statement sizes, padded by repeats
            chunk.extend(chunk[-1:] * (size - len(chunk)))
            rows = self._execute(sql.replay(size, with_time=with_time), chunk).fetchall()
            yield from self._times(rows, with_time)

    def _times(self, rows: list[Any], with_time: bool) -> Iterable[Any]:
        if not with_time:
            return rows
        read = self._sql.read_time
        return ((*row[:7], read(row[7])) for row in rows)

    def _execute(self, sql: str, args: Sequence[Any]) -> Any:
        try:
            self._cursor.execute(sql, args)
        except self._sql.driver_error as error:
            if not (self._fresh and self._sql.is_disconnect(error, self._connection, self._cursor)):
                raise
            self._reconnect()
            self._cursor.execute(sql, args)
        self._fresh = False
        return self._cursor

    def _checkout(self) -> None:
        self._connection, self._cursor, self._token = self._connections.take()

    def _reconnect(self) -> None:
        """Give the dead connection back as broken (which drops every idle one: a restarted
        server ended them all) and take a fresh one."""
        self._broken = True
        self._release(None)
        self._broken = False
        self._checkout()

    def _rollback(self) -> None:
        try:
            self._connection.rollback()
        except self._sql.driver_error:  # gone: the server dropped the transaction with it
            self._broken = True

    def _release(self, error: BaseException | None) -> None:
        if error is not None and self._sql.is_disconnect(error, self._connection, self._cursor):
            self._broken = True
        self._connections.give_back(
            self._connection, self._cursor, self._token, broken=self._broken
        )


def dump_payload(payload: Mapping[str, Any]) -> str:
    """The payload as compact, key-sorted JSON text."""
    return _dump_sorted(payload) if payload else "{}"


_dump_sorted = json_encoder(sort_keys=True, separators=(",", ":"), allow_nan=True)


def _log_args(record: TransitionRecord, stamp: Any) -> tuple[Any, ...]:
    return (
        record.instance_id,
        record.seq,
        record.event,
        record.source,
        record.dest,
        record.actor,
        record.idempotency_key,
        dump_payload(record.payload),
        stamp,
        record.fingerprint,
    )


def _rejected_args(rejected: RejectedEvent, stamp: Any) -> tuple[Any, ...]:
    return (
        rejected.instance_id,
        rejected.event,
        rejected.state,
        rejected.version,
        rejected.actor,
        rejected.idempotency_key,
        rejected.reason,
        rejected.detail,
        dump_payload(rejected.payload),
        stamp,
    )


def _sqlite_text(moment: datetime) -> str:
    """A time as SQLAlchemy writes it to SQLite: UTC wall time with microseconds."""
    text = require_aware(moment).isoformat(" ", "microseconds")
    return text[:-6]  # without "+00:00": SQLite holds UTC wall time


def _from_sqlite_text(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:  # parsing the offset in is several times cheaper than replace(tzinfo=...) after
        return datetime.fromisoformat(value + "+00:00")
    except ValueError:  # not written by SQLAlchemy: it carries its own offset
        return as_utc(datetime.fromisoformat(value))


__all__ = ["Contention", "KeyTaken", "Unit", "UnitSql", "dump_payload"]
