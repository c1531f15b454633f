"""Storage: sqlmodel tables and :class:`SqlStore`, one code path for SQLite and PostgreSQL.

An applied transition is one database transaction: a compare-and-set ``UPDATE`` of the instance
on its ``version`` and the ``INSERT`` of its log row. On PostgreSQL the instance row is also
locked (``SELECT ... FOR UPDATE``) before the decision, so contending writers queue instead of
retrying. On SQLite the file runs in WAL mode; the driver begins the write transaction at the
first ``UPDATE``, so a writer that lost the race finds the version moved and raises
:class:`~fsm.errors.ConcurrentTransition`. The log is append-only, and ``(instance_id,
idempotency_key)`` is unique there, so no race can apply one key twice.

Everything runs on one SQLAlchemy engine and its pool (:mod:`fsm.store.connect`). The hot path
(:meth:`SqlStore.unit`, history and replay reads) runs Core statements on the sqlmodel tables,
compiled once per dialect, on the DBAPI cursor of a pooled connection (:mod:`fsm.store.unit`);
the other reads and writes go through SQLAlchemy's ``Connection`` and its statement cache.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, column, func, insert, select, table, update

from fsm._payload import read_payload
from fsm._signals import Refused
from fsm.clock import require_aware
from fsm.errors import (
    CallInDoubt,
    CallKeyTaken,
    InstanceExists,
    InstanceNotFound,
    ReferenceInUse,
    RejectReason,
)
from fsm.model import Instance, RejectedEvent, TransitionRecord
from fsm.replay import StoredStep
from fsm.store import inbound_journal, intents, leases, listing
from fsm.store.connect import Database
from fsm.store.inbound_journal import InboundAttempt
from fsm.store.intents import CallIntent
from fsm.store.listing import InstanceFilter, InstancePage
from fsm.store.schema import HEAD_REVISION, VERSION_TABLE, current_revision, upgrade_to_head
from fsm.store.statements import UnitSql
from fsm.store.tables import (
    INSTANCE_COLUMNS,
    TABLES,
    CallIntentRow,
    FlowInstanceRow,
    InboundAttemptRow,
    RejectedEventRow,
    TransitionLogRow,
    UtcDateTime,
)
from fsm.store.unit import Unit

DEFAULT_DB_URL = "sqlite:///ewallet-fsm.sqlite3"
"""The embedded default: a SQLite file in the working directory."""

_SCHEMA_LOCK_SQL = "SELECT pg_advisory_xact_lock(28560232962352500)"
"""Serialises schema migrations on PostgreSQL (the key spells ``ewallet`` in ASCII)."""
_VERSION = table(VERSION_TABLE, column("version_num"))
_TOUCH_VERSION = update(_VERSION).values(version_num=_VERSION.c.version_num)
"""A write that changes nothing, rolled back: whether the database takes writes at all."""


_INSTANCE, _LOG, _REJECTED, _INBOUND, _INTENT = TABLES

_SELECT_INSTANCE = select(*INSTANCE_COLUMNS).where(_INSTANCE.c.id == bindparam("instance_id"))
_SELECT_REJECTED = (
    select(_REJECTED)
    .where(_REJECTED.c.instance_id == bindparam("instance_id"))
    .order_by(_REJECTED.c.id)
)


class SqlStore:
    """Flow instances and their logs in one SQL database (SQLite file or PostgreSQL).

    A database failure leaves every method as :class:`~fsm.errors.StorageError` (its
    subclass :class:`~fsm.errors.StorageUnavailable` when a retry may help: the database is
    unreachable, locked, read-only, or ended the session), whichever path the call took; the
    driver's exception is its ``__cause__``. No ``sqlite3``, ``psycopg`` or ``sqlalchemy.exc``
    error reaches the caller of a method (building the store may still raise SQLAlchemy's
    ``ArgumentError`` for a malformed URL, or ``ImportError`` for a driver not installed).

    A store may be used across ``os.fork``: the child opens connections of its own, and leaves
    the ones it inherited open for its parent.
    """

    def __init__(
        self,
        url: str = DEFAULT_DB_URL,
        *,
        sqlite_synchronous: str = "FULL",
        pre_ping: bool = False,
        sqlite_busy_timeout: float = 30.0,
    ) -> None:
        """Open the database at ``url``; call :meth:`create_schema` once before first use.

        On a server database a restarted server costs only a reconnect: by default a pooled
        connection is replaced, with every one opened before it, when its socket shows as it is
        handed out that the server closed it (no round trip), and a unit whose first statement
        finds its connection gone reconnects and runs it again (see :mod:`fsm.store.connect`).

        Raises:
            ValueError: ``sqlite_synchronous`` is not a SQLite level.

        Args:
            url: SQLAlchemy URL; ``sqlite:///path`` or ``postgresql://user@host/db``.
            sqlite_synchronous: SQLite's ``synchronous`` pragma (FULL survives power loss,
                NORMAL only process crashes); ignored on PostgreSQL.
            sqlite_busy_timeout: seconds a SQLite writer waits for another's lock before it
                gives up with "database is locked"; ignored on PostgreSQL.
            pre_ping: test each pooled connection with a ``SELECT 1`` round trip at checkout
                instead (SQLAlchemy's ``pool_pre_ping``), which also catches a connection that
                died without a word before a read outside a unit uses it. Ignored on SQLite.
        """
        self._database = Database(
            url,
            sqlite_synchronous=sqlite_synchronous,
            sqlite_busy_timeout=sqlite_busy_timeout,
            pre_ping=pre_ping,
        )
        self.url = self._database.url
        self.pre_ping = pre_ping
        self.engine: Engine = self._database.engine
        self.dialect = self.engine.dialect.name
        self._sql = UnitSql(self.engine.dialect)

    def create_schema(self) -> None:
        """Create the schema, or migrate it to the latest revision; safe to call at any time.

        Runs the package's Alembic migrations to ``head`` in one transaction. A database
        created before migrations existed is recognised by its tables and stamped first.
        Concurrent callers queue: on PostgreSQL behind an advisory lock, on SQLite behind the
        file's write lock (``BEGIN IMMEDIATE``); whoever comes second finds nothing to do.
        """
        with self._database.connect() as conn:
            if current_revision(conn) == HEAD_REVISION:
                return
        with self._database.connect() as conn:
            if self.dialect == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            elif self.dialect == "postgresql":
                conn.exec_driver_sql(_SCHEMA_LOCK_SQL)
            upgrade_to_head(conn)
            conn.commit()

    def schema_version(self) -> str | None:
        """The schema's Alembic revision (``None`` before :meth:`create_schema` has run)."""
        with self._database.connect() as conn:
            return current_revision(conn)

    def dispose(self) -> None:
        """Close every pooled connection that is not in use."""
        self._database.dispose()

    def insert_instance(self, instance: Instance) -> None:
        """Store a new instance.

        Raises:
            InstanceExists: an instance with that id is already stored.
            ReferenceInUse: a live instance of the flow has the same reference.
            InvalidInstanceData: one of its times is naive; nothing was stored.
        """
        try:
            with self._database.begin(refused=Refused) as conn:
                conn.execute(insert(_INSTANCE), asdict(instance))
        except Refused:
            live = self._live_with_reference(instance)
            if live is not None and live != instance.id:
                raise ReferenceInUse(instance.flow, instance.reference_no or "", live) from None
            raise InstanceExists(instance.id) from None

    def _live_with_reference(self, instance: Instance) -> str | None:
        """The id of a live instance of ``instance``'s flow with its reference, if any."""
        if instance.reference_no is None or instance.deadline_at is None:
            return None
        query = select(_INSTANCE.c.id).where(
            _INSTANCE.c.flow == instance.flow,
            _INSTANCE.c.reference_no == instance.reference_no,
            _INSTANCE.c.deadline_at.is_not(None),
        )
        with self._database.connect() as conn:
            return conn.execute(query).scalar()

    def get(self, instance_id: str) -> Instance:
        """The stored instance.

        Raises:
            InstanceNotFound: nothing is stored under ``instance_id``.
        """
        with self._database.connect() as conn:
            return _load(conn, instance_id)

    def history(self, instance_id: str) -> list[TransitionRecord]:
        """The instance's applied transitions in order (empty for an unknown id)."""
        with self.unit() as unit:
            return unit.history(instance_id)

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
        make = StoredStep._make
        for row in self.stored_steps(ids, with_time=with_time):
            steps[row[0]].append(make(row))
        return steps

    def stored_steps(
        self, instance_ids: Sequence[str], *, with_time: bool = False
    ) -> Iterator[Any]:
        """The rows behind :meth:`replay_rows` as plain tuples in :class:`StoredStep` order.

        Ordered by instance, then sequence; ``occurred_at`` is ``None`` unless ``with_time``.
        One query per 512 ids on SQLite, one in all on PostgreSQL.
        """
        with self.unit() as unit:
            yield from unit.replay_rows(instance_ids, with_time=with_time)

    def rejections(self, instance_id: str) -> list[RejectedEvent]:
        """The instance's refused events in the order they arrived."""
        with self._database.connect() as conn:
            rows = conn.execute(_SELECT_REJECTED, {"instance_id": instance_id})
            return [_rejected(row._asdict()) for row in rows]

    def has_rejection(self, instance_id: str, idempotency_key: str) -> bool:
        """Whether a refused event under ``idempotency_key`` is recorded for the instance."""
        query = (
            select(_REJECTED.c.id)
            .where(
                _REJECTED.c.instance_id == instance_id,
                _REJECTED.c.idempotency_key == idempotency_key,
            )
            .limit(1)
        )
        with self._database.connect() as conn:
            return conn.execute(query).first() is not None

    def count_rejections(self, reason: RejectReason, *, instance_id: str | None = None) -> int:
        """How many events were refused for ``reason``, in all or for one instance.

        For an operator: ``RejectReason.UNKNOWN_STATUS`` counts inquiry answers with a code
        outside the table.
        """
        query = select(func.count()).where(_REJECTED.c.reason == str(reason))
        if instance_id is not None:
            query = query.where(_REJECTED.c.instance_id == instance_id)
        with self._database.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def find(self, *, tx_id: str | None = None, reference_no: str | None = None) -> list[Instance]:
        """Instances with the given provider transaction id and/or merchant reference."""
        query = select(*INSTANCE_COLUMNS)
        if tx_id is not None:
            query = query.where(_INSTANCE.c.tx_id == tx_id)
        if reference_no is not None:
            query = query.where(_INSTANCE.c.reference_no == reference_no)
        with self._database.connect() as conn:
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
        with self._database.connect() as conn:
            return [_instance(row._asdict()) for row in conn.execute(query)]

    def claim_due(
        self, now: datetime, *, owner: str, lease: timedelta, limit: int = 100
    ) -> list[Instance]:
        """Claim up to ``limit`` due instances no other reconciler holds, earliest deadline first.

        Each stays claimed by ``owner`` until :meth:`release` or until ``lease`` has passed
        (see :mod:`fsm.store.leases`).

        Raises:
            InvalidInstanceData: ``now`` is naive or ``lease`` is not positive.
        """
        until = leases.lease_end(now, lease)
        with self._database.begin() as conn:
            return leases.claim_due(
                conn,
                skip_locked=self.dialect == "postgresql",
                owner=owner,
                now=now,
                until=until,
                limit=limit,
            )

    def claim(self, instance_id: str, *, owner: str, now: datetime, lease: timedelta) -> bool:
        """Claim one instance for ``owner``; false when another reconciler's claim holds it."""
        until = leases.lease_end(now, lease)
        with self._database.begin() as conn:
            return leases.claim_one(conn, instance_id, owner=owner, now=now, until=until)

    def release(self, instance_ids: Sequence[str], *, owner: str) -> None:
        """Give back ``owner``'s claims on ``instance_ids``."""
        with self._database.begin() as conn:
            leases.release(conn, instance_ids, owner=owner)

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
        exclusive: bool = False,
        call_key: str | None = None,
    ) -> int:
        """Commit an open intent for a provider call about to be sent; returns its id.

        An ``exclusive`` call (a cancel) is refused while another of its kind for the instance is
        open, and a call under a ``call_key`` already recorded for the instance is refused
        whether or not it is still open: the database's unique indexes decide, so of two racing
        callers one gets through.

        Raises:
            InvalidInstanceData: ``at`` is naive or ``request`` is not JSON data.
            InstanceNotFound: no instance ``instance_id`` is stored.
            CallKeyTaken: a call under ``call_key`` is already recorded for the instance.
            CallInDoubt: ``exclusive``, and such a call for the instance is still open.
        """
        try:
            with self._database.begin(refused=Refused) as conn:
                return intents.record(
                    conn,
                    instance_id=instance_id,
                    call=call,
                    reference_no=reference_no,
                    amount=amount,
                    tx_id=tx_id,
                    request=request or {},
                    at=at,
                    exclusive=exclusive,
                    call_key=call_key,
                )
        except Refused:
            self.get(instance_id)  # the foreign key refused it: InstanceNotFound
            taken = None if call_key is None else self.intent_by_key(instance_id, call_key)
            if taken is not None:
                raise CallKeyTaken(instance_id, call_key or "", taken.id) from None
            raise CallInDoubt(instance_id, call) from None

    def intent_by_key(self, instance_id: str, call_key: str) -> CallIntent | None:
        """The provider call recorded under ``call_key`` for the instance, if any."""
        with self._database.connect() as conn:
            return intents.by_key(conn, instance_id, call_key)

    def finish_intent(self, intent_id: int, *, outcome: str, at: datetime) -> bool:
        """Close an intent once its answer is stored; false when it was closed already."""
        with self._database.begin() as conn:
            return intents.finish(conn, intent_id, outcome=outcome, at=at)

    def open_intents(
        self,
        *,
        recorded_before: datetime | None = None,
        instance_id: str | None = None,
        limit: int = 100,
    ) -> list[CallIntent]:
        """Intents never finished, oldest first; only those recorded at or before
        ``recorded_before`` and of ``instance_id``, where given."""
        with self._database.connect() as conn:
            return intents.still_open(
                conn, before=recorded_before, instance_id=instance_id, limit=limit
            )

    def intents(self, instance_id: str) -> list[CallIntent]:
        """Every provider call recorded for the instance, in order."""
        with self._database.connect() as conn:
            return intents.of_instance(conn, instance_id)

    def list_instances(self, *, limit: int = 1000) -> list[Instance]:
        """Stored instances, oldest first."""
        query = (
            select(*INSTANCE_COLUMNS).order_by(_INSTANCE.c.created_at, _INSTANCE.c.id).limit(limit)
        )
        with self._database.connect() as conn:
            return [_instance(row._asdict()) for row in conn.execute(query)]

    def page_instances(
        self, where: InstanceFilter | None = None, *, limit: int = 50, cursor: str | None = None
    ) -> InstancePage:
        """One page of the instances matching ``where``, newest first (:mod:`~fsm.store.listing`).

        Raises:
            InvalidInstanceData: a bad ``limit``, a naive time, or a cursor no listing gave.
        """
        query = listing.page_query(where or InstanceFilter(), limit=limit, cursor=cursor)
        with self._database.connect() as conn:
            rows = [_instance(row._asdict()) for row in conn.execute(query)]
        return listing.make_page(rows, limit)

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

        Secret-looking parameters (tokens, keys, ...) are stored as ``[redacted]``; the
        caller leaves out what it must not keep (an oversized body: its size only). Text is
        stored as PostgreSQL can hold it (no NUL characters) and cut to its column's size, and
        parameters too large for a payload are replaced by a note of their size.

        Raises:
            InvalidInstanceData: ``received_at`` is naive; nothing was stored.
        """
        with self._database.begin() as conn:
            inbound_journal.record(
                conn,
                received_at=received_at,
                endpoint=endpoint,
                outcome=outcome,
                status_code=status_code,
                error=error,
                reason=reason,
                instance_id=instance_id,
                parameters=parameters,
                body_bytes=body_bytes,
                client_ip=client_ip,
            )

    def inbound_attempts(
        self, *, limit: int = 100, instance_id: str | None = None
    ) -> list[InboundAttempt]:
        """The latest stored inbound requests, newest first (only ``instance_id``'s, if given)."""
        with self._database.connect() as conn:
            return inbound_journal.latest(conn, limit=limit, instance_id=instance_id)

    def prune_inbound(self, before: datetime) -> int:
        """Delete the inbound requests received before ``before``; returns how many went.

        Rows go a batch at a time (``PRUNE_BATCH``), each batch its own
        transaction, so endpoints recording meanwhile wait for one batch at most.

        Raises:
            InvalidInstanceData: ``before`` is naive; nothing was deleted.
        """
        pruned = 0
        while True:
            with self._database.begin() as conn:
                deleted = inbound_journal.prune_batch(conn, before)
            pruned += deleted
            if deleted < inbound_journal.PRUNE_BATCH:
                return pruned

    def check_writable(self) -> None:
        """Make sure the database takes a write: write the schema's version row, roll it back.

        Raises:
            StorageUnavailable: the database cannot be reached, is read-only, or stays locked;
                the message says so with the driver's first line.
            StorageError: it failed otherwise (no schema, most likely).
        """
        with self._database.connect("cannot write to the database") as conn:
            conn.execute(_TOUCH_VERSION)
            conn.rollback()

    def unit(self) -> Unit:
        """One database transaction on the driver cursor of a pooled connection.

        ``with store.unit() as unit:`` commits when the block ends and rolls back whole when it
        raises. Lock contention the database gave up on, and the log's unique key, surface as
        the engine's private signals (:mod:`fsm._signals`); other database failures as
        :class:`~fsm.errors.StorageError`.
        """
        return Unit(self._database, self._sql)


def _load(conn: Connection, instance_id: str) -> Instance:
    row = conn.execute(_SELECT_INSTANCE, {"instance_id": instance_id}).first()
    if row is None:
        raise InstanceNotFound(instance_id)
    return _instance(row._asdict())


def _instance(row: Mapping[str, Any]) -> Instance:
    return Instance(**row)


def _rejected(row: Mapping[str, Any]) -> RejectedEvent:
    values = dict(row)
    del values["id"]
    values["reason"] = RejectReason(values["reason"])
    values["payload"] = read_payload(values["payload"])
    return RejectedEvent(**values)


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
