"""Storage: sqlmodel tables and :class:`SqlStore`, one code path for SQLite and PostgreSQL.

An applied transition is one database transaction: a compare-and-set ``UPDATE`` of the instance
on its ``version`` and the ``INSERT`` of its log row. On PostgreSQL the instance row is also
locked (``SELECT ... FOR UPDATE``) before the decision, so contending writers queue instead of
retrying. On SQLite the file runs in WAL mode; the driver begins the write transaction at the
first ``UPDATE``, so a writer that lost the race finds the version moved and raises
:class:`~fsm.errors.ConcurrentTransition`. The log is append-only, and ``(instance_id,
idempotency_key)`` is unique there, so no race can apply one key twice.

The hot path runs prepared SQLAlchemy Core statements on the sqlmodel tables; the ORM is left
for convenience reads.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    create_engine,
    event,
    exc,
    insert,
    null,
    select,
    update,
)
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

from fsm import claims, intents
from fsm._payload import clean_payload
from fsm.clock import require_aware
from fsm.definition import Actor
from fsm.errors import (
    ConcurrentTransition,
    InstanceExists,
    InstanceNotFound,
    InvalidInstanceData,
    RejectReason,
)
from fsm.intents import CallIntent
from fsm.model import Instance, RejectedEvent, TransitionRecord
from fsm.replay import StoredStep
from fsm.schema import HEAD_REVISION, current_revision, upgrade_to_head
from fsm.tables import (
    INSTANCE_COLUMNS,
    TABLES,
    CallIntentRow,
    FlowInstanceRow,
    InboundAttemptRow,
    RejectedEventRow,
    TransitionLogRow,
    UtcDateTime,
)

DEFAULT_DB_URL = "sqlite:///ewallet-fsm.sqlite3"
"""The embedded default: a SQLite file in the working directory."""

_SCHEMA_LOCK_SQL = "SELECT pg_advisory_xact_lock(28560232962352500)"
"""Serialises schema migrations on PostgreSQL (the key spells ``ewallet`` in ASCII)."""


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


_INSTANCE, _LOG, _REJECTED, _INBOUND, _INTENT = TABLES

_SELECT_INSTANCE = select(*INSTANCE_COLUMNS).where(_INSTANCE.c.id == bindparam("instance_id"))
_SELECT_INSTANCE_LOCKED = _SELECT_INSTANCE.with_for_update()
_SELECT_KEY = select(_LOG).where(
    _LOG.c.instance_id == bindparam("instance_id"),
    _LOG.c.idempotency_key == bindparam("key"),
)
_CAS_UPDATE = (
    update(_INSTANCE)
    .where(_INSTANCE.c.id == bindparam("instance_id"), _INSTANCE.c.version == bindparam("expected"))
    .values(
        state=bindparam("dest"),
        version=bindparam("seq"),
        deadline_at=bindparam("deadline_at"),
        updated_at=bindparam("occurred_at"),
    )
)
_INSERT_LOG = insert(_LOG)
_INSERT_REJECTED = insert(_REJECTED)
_SELECT_HISTORY = (
    select(_LOG).where(_LOG.c.instance_id == bindparam("instance_id")).order_by(_LOG.c.seq)
)
_REPLAY_COLUMNS = (
    _LOG.c.instance_id,
    _LOG.c.seq,
    _LOG.c.event,
    _LOG.c.source,
    _LOG.c.dest,
    _LOG.c.actor,
    _LOG.c.fingerprint,
)
_SELECT_REPLAY = (
    select(*_REPLAY_COLUMNS, null())
    .where(_LOG.c.instance_id.in_(bindparam("ids", expanding=True)))
    .order_by(_LOG.c.instance_id, _LOG.c.seq)
)
_SELECT_REPLAY_TIMED = (
    select(*_REPLAY_COLUMNS, _LOG.c.occurred_at)
    .where(_LOG.c.instance_id.in_(bindparam("ids", expanding=True)))
    .order_by(_LOG.c.instance_id, _LOG.c.seq)
)
_REPLAY_SQL = (
    f"SELECT {', '.join(column.name for column in _REPLAY_COLUMNS)}, NULL FROM {_LOG.name} "  # noqa: S608 (constant names; the ids are bound)
    "WHERE instance_id IN ({}) ORDER BY instance_id, seq"
)
_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}
"""The driver's positional marker by DB-API paramstyle (others read through SQLAlchemy)."""
_REPLAY_CHUNK = 1000
"""Instance ids per bulk replay query, well under SQLite's limit on bound parameters."""
_SELECT_REJECTED = (
    select(_REJECTED)
    .where(_REJECTED.c.instance_id == bindparam("instance_id"))
    .order_by(_REJECTED.c.id)
)


def normalise_url(url: str) -> str:
    """Point bare PostgreSQL URLs at psycopg 3, the driver this project installs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class SqlStore:
    """Flow instances and their logs in one SQL database (SQLite file or PostgreSQL)."""

    def __init__(
        self,
        url: str = DEFAULT_DB_URL,
        *,
        sqlite_synchronous: str = "FULL",
        pre_ping: bool = True,
    ) -> None:
        """Open the database at ``url``; call :meth:`create_schema` once before first use.

        Args:
            url: SQLAlchemy URL; ``sqlite:///path`` or ``postgresql://user@host/db``.
            sqlite_synchronous: SQLite's ``synchronous`` pragma (FULL survives power loss,
                NORMAL only process crashes); ignored on PostgreSQL.
            pre_ping: on a server database, test each pooled connection with a round trip when
                it is checked out, so a restarted server costs only a reconnect; off saves that
                round trip per unit, and a dropped connection then fails one unit. Ignored on
                SQLite.
        """
        self.url = normalise_url(url)
        self.pre_ping = pre_ping
        self.engine: Engine = create_engine(self.url, **_engine_options(self.url, pre_ping))
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine, sqlite_synchronous)

    def create_schema(self) -> None:
        """Create the schema, or migrate it to the latest revision; safe to call at any time.

        Runs the package's Alembic migrations to ``head`` in one transaction. A database
        created before migrations existed is recognised by its tables and stamped first.
        Concurrent callers queue: on PostgreSQL behind an advisory lock, on SQLite behind the
        file's write lock (``BEGIN IMMEDIATE``); whoever comes second finds nothing to do.
        """
        with self.engine.connect() as conn:
            if current_revision(conn) == HEAD_REVISION:
                return
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            elif self.dialect == "postgresql":
                conn.exec_driver_sql(_SCHEMA_LOCK_SQL)
            upgrade_to_head(conn)
            conn.commit()

    def schema_version(self) -> str | None:
        """The schema's Alembic revision (``None`` before :meth:`create_schema` has run)."""
        with self.engine.connect() as conn:
            return current_revision(conn)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def insert_instance(self, instance: Instance) -> None:
        """Store a new instance.

        Raises:
            InstanceExists: an instance with that id is already stored.
            InvalidInstanceData: one of its times is naive; nothing was stored.
        """
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(_INSTANCE), asdict(instance))
        except exc.IntegrityError:
            raise InstanceExists(instance.id) from None
        except exc.StatementError as error:  # SQLAlchemy wraps UtcDateTime's refusal
            if isinstance(error.orig, InvalidInstanceData):
                raise error.orig from None
            raise

    def get(self, instance_id: str) -> Instance:
        """The stored instance.

        Raises:
            InstanceNotFound: nothing is stored under ``instance_id``.
        """
        with self.engine.connect() as conn:
            return _load(conn, instance_id, locked=False)

    def history(self, instance_id: str) -> list[TransitionRecord]:
        """The instance's applied transitions in order (empty for an unknown id)."""
        with self.engine.connect() as conn:
            rows = conn.execute(_SELECT_HISTORY, {"instance_id": instance_id})
            return [_record(row._asdict()) for row in rows]

    def replay_rows(
        self, instance_ids: Iterable[str], *, with_time: bool = False
    ) -> dict[str, list[StoredStep]]:
        """The logged steps of many instances, in log order, without payloads.

        One connection and one query per thousand ids; only the columns a replay checks are
        read (``occurred_at`` too when ``with_time``). Every id given is a key of the result,
        in the order given; an id with no log maps to an empty list.
        """
        ids = list(dict.fromkeys(instance_ids))
        steps: dict[str, list[StoredStep]] = {instance_id: [] for instance_id in ids}
        marker = _PLACEHOLDERS.get(self.engine.dialect.paramstyle)
        with self.engine.connect() as conn:
            for start in range(0, len(ids), _REPLAY_CHUNK):
                chunk = ids[start : start + _REPLAY_CHUNK]
                if with_time or marker is None:  # the time needs UtcDateTime's processing
                    statement = _SELECT_REPLAY_TIMED if with_time else _SELECT_REPLAY
                    rows: Iterable[Sequence[Any]] = conn.execute(statement, {"ids": chunk})
                else:  # plain text columns: the driver's tuples, without a Row each
                    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                    cursor.execute(_REPLAY_SQL.format(", ".join([marker] * len(chunk))), chunk)
                    rows = cursor.fetchall()
                    cursor.close()
                make = StoredStep._make
                for row in rows:
                    steps[row[0]].append(make(row))
        return steps

    def rejections(self, instance_id: str) -> list[RejectedEvent]:
        """The instance's refused events in the order they arrived."""
        with self.engine.connect() as conn:
            rows = conn.execute(_SELECT_REJECTED, {"instance_id": instance_id})
            return [_rejected(row._asdict()) for row in rows]

    def find(self, *, tx_id: str | None = None, reference_no: str | None = None) -> list[Instance]:
        """Instances with the given NICEPAY ``tXid`` and/or ``referenceNo``."""
        query = select(*INSTANCE_COLUMNS)
        if tx_id is not None:
            query = query.where(_INSTANCE.c.tx_id == tx_id)
        if reference_no is not None:
            query = query.where(_INSTANCE.c.reference_no == reference_no)
        with self.engine.connect() as conn:
            return [
                _instance(row._asdict()) for row in conn.execute(query.order_by(_INSTANCE.c.id))
            ]

    def due(self, now: datetime, *, limit: int = 100) -> list[Instance]:
        """Instances whose deadline has passed at ``now`` (aware), earliest first."""
        query = (
            select(*INSTANCE_COLUMNS)
            .where(_INSTANCE.c.deadline_at <= require_aware(now))
            .order_by(_INSTANCE.c.deadline_at)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_instance(row._asdict()) for row in conn.execute(query)]

    def claim_due(
        self, now: datetime, *, owner: str, lease: timedelta, limit: int = 100
    ) -> list[Instance]:
        """Claim up to ``limit`` due instances no other reconciler holds, earliest deadline first.

        Each stays claimed by ``owner`` until :meth:`release` or until ``lease`` has passed
        (see :mod:`fsm.claims`).

        Raises:
            InvalidInstanceData: ``now`` is naive or ``lease`` is not positive.
        """
        until = claims.lease_end(now, lease)
        with self._writing() as conn:
            return claims.claim_due(
                conn,
                skip_locked=self.dialect == "postgresql",
                owner=owner,
                now=now,
                until=until,
                limit=limit,
            )

    def claim(self, instance_id: str, *, owner: str, now: datetime, lease: timedelta) -> bool:
        """Claim one instance for ``owner``; false when another reconciler's claim holds it."""
        until = claims.lease_end(now, lease)
        with self._writing() as conn:
            return claims.claim_one(conn, instance_id, owner=owner, now=now, until=until)

    def release(self, instance_ids: Sequence[str], *, owner: str) -> None:
        """Give back ``owner``'s claims on ``instance_ids``."""
        with self._writing() as conn:
            claims.release(conn, instance_ids, owner=owner)

    def record_intent(
        self,
        instance_id: str,
        call: str,
        *,
        at: datetime,
        reference_no: str | None = None,
        amount: str | None = None,
        tx_id: str | None = None,
        request: Mapping[str, Any] | None = None,
    ) -> int:
        """Commit an open intent for a provider call about to be sent; returns its id.

        Raises:
            InvalidInstanceData: ``at`` is naive or ``request`` is not JSON data.
            InstanceNotFound: no instance ``instance_id`` is stored.
        """
        try:
            with self._writing() as conn:
                return intents.record(
                    conn,
                    instance_id=instance_id,
                    call=call,
                    reference_no=reference_no,
                    amount=amount,
                    tx_id=tx_id,
                    request=request or {},
                    at=at,
                )
        except exc.IntegrityError:  # the foreign key: no such instance
            raise InstanceNotFound(instance_id) from None

    def finish_intent(self, intent_id: int, *, outcome: str, at: datetime) -> bool:
        """Close an intent once its answer is stored; false when it was closed already."""
        with self._writing() as conn:
            return intents.finish(conn, intent_id, outcome=outcome, at=at)

    def open_intents(self, *, recorded_before: datetime, limit: int = 100) -> list[CallIntent]:
        """Intents recorded at or before ``recorded_before`` and never finished, oldest first."""
        with self.engine.connect() as conn:
            return intents.still_open(conn, before=recorded_before, limit=limit)

    def intents(self, instance_id: str) -> list[CallIntent]:
        """Every provider call recorded for the instance, in order."""
        with self.engine.connect() as conn:
            return intents.of_instance(conn, instance_id)

    def list_instances(self, *, limit: int = 1000) -> list[Instance]:
        """Stored instances, oldest first."""
        query = (
            select(*INSTANCE_COLUMNS).order_by(_INSTANCE.c.created_at, _INSTANCE.c.id).limit(limit)
        )
        with self.engine.connect() as conn:
            return [_instance(row._asdict()) for row in conn.execute(query)]

    def record_inbound(
        self,
        *,
        received_at: datetime,
        endpoint: str,
        outcome: str,
        status_code: int,
        error: str | None = None,
        reason: str = "",
        instance_id: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        body_bytes: int = 0,
        client_ip: str | None = None,
    ) -> None:
        """Append one inbound request to ``inbound_attempt``; whatever it held, it is stored.

        Secret-looking parameters (``merchantToken``, ...) are stored as ``[redacted]``; the
        caller leaves out what it must not keep (an oversized body: its size only). Text is
        stored as PostgreSQL can hold it (no NUL characters) and cut to its column's size, and
        parameters too large for a payload are replaced by a note of their size.

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
            "parameters": _inbound_parameters(parameters),
            "body_bytes": int(body_bytes),
            "client_ip": _storable(client_ip, 64),
        }
        with self.engine.begin() as conn:
            conn.execute(insert(_INBOUND), values)

    def inbound_attempts(
        self, *, limit: int = 100, instance_id: str | None = None
    ) -> list[InboundAttempt]:
        """The latest stored inbound requests, newest first (only ``instance_id``'s, if given)."""
        query = select(_INBOUND)
        if instance_id is not None:
            query = query.where(_INBOUND.c.instance_id == instance_id)
        query = query.order_by(_INBOUND.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_inbound(row._asdict()) for row in conn.execute(query)]

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A short write transaction; lock contention surfaces as :class:`Contention`."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except exc.OperationalError as error:
            if _is_contention(error):
                raise Contention() from error
            raise

    @contextmanager
    def unit(self) -> Iterator[Unit]:
        """One database transaction for one event: commits on success, rolls back on error."""
        try:
            with self.engine.begin() as conn:
                yield Unit(conn, lock_rows=self.dialect != "sqlite")
        except exc.OperationalError as error:
            if _is_contention(error):
                raise Contention() from error
            raise


class Contention(Exception):
    """Lock contention the database gave up on; the engine turns it into ConcurrentTransition."""


class KeyTaken(ConcurrentTransition):
    """The log already holds this idempotency key for the instance (the unique key refused it).

    Either an earlier event used the key, or a racing writer logged it first. The unit rolls
    back whole; the engine then answers from the logged record, as a duplicate or a reused key.
    """


class Unit:
    """The statements of one event's transaction."""

    def __init__(self, conn: Connection, *, lock_rows: bool) -> None:
        self._conn = conn
        self._select = _SELECT_INSTANCE_LOCKED if lock_rows else _SELECT_INSTANCE

    def load(self, instance_id: str) -> Instance:
        """The instance, locked for this transaction where the database supports it."""
        return _load(self._conn, instance_id, locked=self._select is _SELECT_INSTANCE_LOCKED)

    def find_key(self, instance_id: str, key: str) -> TransitionRecord | None:
        """The transition already applied under ``key``, if any."""
        row = self._conn.execute(_SELECT_KEY, {"instance_id": instance_id, "key": key}).first()
        return None if row is None else _record(row._asdict())

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
            ConcurrentTransition: the version moved; :class:`KeyTaken` (a subclass) when the key
                is already logged. The exception leaves the unit's ``with`` block, so the
                transaction rolls back whole.
        """
        values = {
            "instance_id": record.instance_id,
            "expected": expected_version,
            "dest": record.dest,
            "seq": record.seq,
            "deadline_at": deadline_at,
            "occurred_at": record.occurred_at,
        }
        statement = _CAS_UPDATE
        if bound:  # bind names may not equal column names, hence the prefix
            statement = statement.values(**{name: bindparam(f"bound_{name}") for name in bound})
            values.update({f"bound_{name}": value for name, value in bound.items()})
        if self._conn.execute(statement, values).rowcount != 1:
            raise _lost_race(record, expected_version)
        try:
            self._conn.execute(_INSERT_LOG, _log_values(record))
        except exc.IntegrityError:  # the unique (instance_id, idempotency_key) refused it
            raise KeyTaken(
                record.instance_id, record.source, record.event, expected_version
            ) from None

    def reject(self, rejected: RejectedEvent) -> None:
        """Record an event that was not applied."""
        values = _fields_of(rejected)
        values["payload"] = dump_payload(rejected.payload)
        self._conn.execute(_INSERT_REJECTED, values)


def _lost_race(record: TransitionRecord, expected_version: int) -> ConcurrentTransition:
    return ConcurrentTransition(record.instance_id, record.source, record.event, expected_version)


def dump_payload(payload: Mapping[str, Any]) -> str:
    """The payload as compact, key-sorted JSON text."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _log_values(record: TransitionRecord) -> dict[str, Any]:
    values = _fields_of(record)
    values["payload"] = dump_payload(record.payload)
    return values


def _fields_of(value: TransitionRecord | RejectedEvent) -> dict[str, Any]:
    """The fields as a shallow dict (``asdict`` would deep-copy the payload it then dumps)."""
    return {name: getattr(value, name) for name in value.__dataclass_fields__}


def _load(conn: Connection, instance_id: str, *, locked: bool) -> Instance:
    statement = _SELECT_INSTANCE_LOCKED if locked else _SELECT_INSTANCE
    row = conn.execute(statement, {"instance_id": instance_id}).first()
    if row is None:
        raise InstanceNotFound(instance_id)
    return _instance(row._asdict())


def _instance(row: Mapping[str, Any]) -> Instance:
    return Instance(**row)


def _record(row: Mapping[str, Any]) -> TransitionRecord:
    values = dict(row)
    values["actor"] = Actor(values["actor"])
    values["payload"] = json.loads(values["payload"])
    return TransitionRecord(**values)


def _rejected(row: Mapping[str, Any]) -> RejectedEvent:
    values = dict(row)
    del values["id"]
    values["actor"] = Actor(values["actor"])
    values["reason"] = RejectReason(values["reason"])
    values["payload"] = json.loads(values["payload"])
    return RejectedEvent(**values)


def _inbound(row: Mapping[str, Any]) -> InboundAttempt:
    values = dict(row)
    values["parameters"] = json.loads(values["parameters"])
    return InboundAttempt(**values)


def _storable(text: str | None, limit: int) -> str | None:
    """``text`` as any database stores it: no NUL, no lone surrogate, at most ``limit`` long."""
    if text is None:
        return None
    safe = str(text).encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
    return safe[:limit]


def _inbound_parameters(parameters: Mapping[str, Any] | None) -> str:
    """The parameters as JSON text, secrets redacted; only their size when they are too large."""
    try:
        cleaned = clean_payload(parameters)
    except (InvalidInstanceData, UnicodeError):
        text = json.dumps(dict(parameters or {}), default=str)
        cleaned = {"unstored_parameters": f"{len(text)} characters"}
    return json.dumps(cleaned, sort_keys=True, separators=(",", ":"))  # ASCII: \u escapes


def _engine_options(url: str, pre_ping: bool) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # The driver's own busy wait; writers queue for up to 30 s before "database is locked".
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    return {"pool_pre_ping": pre_ping}


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    level = synchronous.upper()
    if level not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise ValueError(f"unknown SQLite synchronous level {synchronous!r}")

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        _use_wal(cursor)
        cursor.execute(f"PRAGMA synchronous={level}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def _use_wal(cursor: Any) -> None:
    """Put the file in WAL mode, once; the mode is stored in the file and outlives connections.

    Switching needs the file to itself, and SQLite answers "database is locked" at once, without
    its busy wait, when another connection opened the new file at the same moment; so the switch
    is retried for a while (it is only ever contended while a file is being created).
    """
    deadline = time.monotonic() + _WAL_SWITCH_SECONDS
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


_WAL_SWITCH_SECONDS = 30.0


def _is_contention(error: exc.OperationalError) -> bool:
    text = str(error.orig).lower()
    markers = ("database is locked", "deadlock detected", "could not serialize", "lock timeout")
    return any(marker in text for marker in markers)


__all__ = [
    "DEFAULT_DB_URL",
    "TABLES",
    "CallIntentRow",
    "FlowInstanceRow",
    "InboundAttempt",
    "InboundAttemptRow",
    "RejectedEventRow",
    "SqlStore",
    "TransitionLogRow",
    "Unit",
    "UtcDateTime",
]
