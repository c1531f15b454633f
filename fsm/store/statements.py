"""A unit's statements: SQLAlchemy Core on the sqlmodel tables, compiled once per dialect.

A unit of work (:mod:`fsm.store.unit`) runs these on the driver cursor of a pooled connection,
so :class:`UnitSql` compiles each statement once, when the store is built, to the driver's SQL
text and the order of its positional parameters (a compare-and-set for each set of columns a
transition may bind), and builds rows back into the library's values. Times are written as
SQLAlchemy writes them (UTC text ``YYYY-MM-DD HH:MM:SS.ffffff`` on SQLite, ``timestamptz`` on
PostgreSQL), so the ORM and Core reads elsewhere read them alike, and read back as aware UTC; a
naive time is refused (:class:`~fsm.errors.InvalidInstanceData`) before anything is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import combinations
from operator import itemgetter
from typing import Any, NamedTuple, cast

from sqlalchemy import Dialect, String, any_, bindparam, insert, null, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement, ColumnElement

from fsm._payload import dump_payload, read_payload
from fsm.clock import as_utc, require_aware
from fsm.definition import BINDABLE_FIELDS
from fsm.events import Event
from fsm.model import Instance, RejectedEvent, TransitionRecord
from fsm.store.protocol import StoredStep
from fsm.store.tables import (
    INSTANCE_COLUMNS,
    INSTANCE_TABLE,
    LOG_TABLE,
    OUTBOX_TABLE,
    REJECTED_TABLE,
)

_RECORD_FIELDS = tuple(TransitionRecord.__dataclass_fields__)
_LOG_FIELDS = (*_RECORD_FIELDS, "chain_link", "chain_key")
"""A log insert's columns: the record's, then its link and the id of its key."""
_REJECTED_FIELDS = tuple(RejectedEvent.__dataclass_fields__)
_REPLAY_FIELDS = tuple(name for name in StoredStep._fields if name != "occurred_at")
"""What a bulk replay reads of each log row (its time only when a cut-off asks for it)."""
_CAS_FIELDS = (
    "dest",
    "seq",
    "flow_version",
    "deadline_at",
    "occurred_at",
    "chain_link",
    "chain_seal",
    "chain_key",
    "instance_id",
    "expected",
)
"""The compare-and-set's parameters in the order a unit passes them; bound columns follow."""
_BOUND_SETS = tuple(
    names
    for size in range(len(BINDABLE_FIELDS) + 1)
    for names in combinations(sorted(BINDABLE_FIELDS), size)
)
REPLAY_CHUNK = 512
"""Instance ids per bulk replay query on SQLite, well under its limit on bound parameters."""

_LOAD = select(*INSTANCE_COLUMNS, INSTANCE_TABLE.c.chain_link, INSTANCE_TABLE.c.chain_key).where(
    INSTANCE_TABLE.c.id == bindparam("instance_id")
)
_FIND_KEY = select(*(LOG_TABLE.c[name] for name in _RECORD_FIELDS)).where(
    LOG_TABLE.c.instance_id == bindparam("instance_id"),
    LOG_TABLE.c.idempotency_key == bindparam("idempotency_key"),
)
_HISTORY = (
    select(*(LOG_TABLE.c[name] for name in _RECORD_FIELDS))
    .where(LOG_TABLE.c.instance_id == bindparam("instance_id"))
    .order_by(LOG_TABLE.c.seq)
)
_INSERT_LOG = insert(LOG_TABLE).values({name: bindparam(name) for name in _LOG_FIELDS})
_INSERT_REJECTED = insert(REJECTED_TABLE).values(
    {name: bindparam(name) for name in _REJECTED_FIELDS}
)
_OUTBOX_FIELDS = (
    "id",
    "instance_id",
    "seq",
    "type",
    "body",
    "created_at",
    "status",
    "attempts",
    "next_attempt_at",
)
"""In the table's column order, which the compiled insert binds in."""
_INSERT_OUTBOX = insert(OUTBOX_TABLE).values({name: bindparam(name) for name in _OUTBOX_FIELDS})
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
            flow_version=bindparam("flow_version"),
            deadline_at=bindparam("deadline_at"),
            updated_at=bindparam("occurred_at"),
            chain_link=bindparam("chain_link"),
            chain_seal=bindparam("chain_seal"),
            chain_key=bindparam("chain_key"),
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
    """A unit's statements compiled for one dialect, and how its rows become values."""

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
        outbox = compile_positional(_INSERT_OUTBOX, positional, _OUTBOX_FIELDS)
        if outbox.arrange is not None:  # pragma: no cover - the fields follow the columns
            raise ValueError("outbox fields out of column order")
        self.insert_outbox = outbox.sql
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
        self._bulk: dict[tuple[str, int], str] = {}
        self.write_time: Callable[[datetime], Any] = _sqlite_text if self.sqlite else require_aware
        self.read_time: Callable[[Any], Any] = _from_sqlite_text if self.sqlite else as_utc

    def replay(self, count: int, *, with_time: bool) -> str:
        """The bulk replay read for ``count`` ids (SQLite) or for any number (PostgreSQL)."""
        return self.bulk(
            f"replay:{with_time}",
            count,
            LOG_TABLE.c.instance_id,
            lambda ids: _replay(ids, with_time=with_time),
        )

    def bulk(
        self,
        name: str,
        count: int,
        id_column: ColumnElement[str],
        build: Callable[[ColumnElement[bool]], ClauseElement],
    ) -> str:
        """The read ``build`` makes of a condition on ``id_column``, compiled for ``count`` ids
        (SQLite, callers pad with repeated ids) or for any number (PostgreSQL); kept by
        ``name``."""
        key = (name, count if self.sqlite else 0)
        sql = self._bulk.get(key)
        if sql is None:
            ids: ColumnElement[bool]
            if self.sqlite:  # one statement per size bucket
                names = tuple(f"id_{n}" for n in range(count))
                ids = id_column.in_([bindparam(name) for name in names])
            else:
                names = ("ids",)
                ids = id_column == any_(bindparam("ids", type_=ARRAY(String)))
            sql = compile_positional(build(ids), self._positional, names).sql
            self._bulk[key] = sql
        return sql

    def instance(self, row: Sequence[Any]) -> Instance:
        """An instance from a row of :data:`~fsm.store.tables.INSTANCE_COLUMNS`: ten plain columns,
        three times, then the refunded total and the flow version (columns after them, the
        chain link and key, are left)."""
        read = self.read_time
        return Instance(*row[:10], *[read(value) for value in row[10:13]], *row[13:15])

    def record(self, row: Sequence[Any]) -> TransitionRecord:
        """A log record from a row of its columns in field order."""
        (
            instance_id,
            seq,
            event,
            source,
            dest,
            actor,
            key,
            payload,
            occurred_at,
            fingerprint,
            flow_version,
        ) = row
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
            flow_version,
        )


def log_args(
    record: TransitionRecord, stamp: Any, payload: str, link: str, key_id: str
) -> tuple[Any, ...]:
    """The log insert's parameters; ``stamp`` is the record's time as the dialect writes it,
    ``payload`` the text :func:`dump_payload` made of it, ``link`` and ``key_id`` its chain's."""
    return (
        record.instance_id,
        record.seq,
        record.event,
        record.source,
        record.dest,
        record.actor,
        record.idempotency_key,
        payload,
        stamp,
        record.fingerprint,
        record.flow_version,
        link,
        key_id,
    )


def rejected_args(rejected: RejectedEvent, stamp: Any) -> tuple[Any, ...]:
    """The refused event insert's parameters; ``stamp`` as :func:`log_args` takes it."""
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


def outbox_args(event: Event, stamp: Any) -> tuple[Any, ...]:
    """The outbox insert's parameters; ``stamp`` is the event's time as the dialect writes it."""
    body = event.to_json()
    return (event.id, event.payment_id, event.version, event.type, body, stamp, "pending", 0, stamp)


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


__all__ = [
    "REPLAY_CHUNK",
    "Compiled",
    "UnitSql",
    "compile_positional",
    "dump_payload",
    "log_args",
    "outbox_args",
    "positional_dialect",
    "rejected_args",
]
