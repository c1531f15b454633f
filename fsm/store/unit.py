"""One event's transaction on the driver cursor of a pooled connection.

A unit checks a connection out of the store's SQLAlchemy pool, runs the statements
:class:`~fsm.store.statements.UnitSql` compiled once for the dialect on that connection's DBAPI
cursor, and checks the connection back in: the hot path skips SQLAlchemy's per-statement
execution context, parameter processing and result set-up, and keeps its pool, its
connection setup, its disconnect test and its invalidation.

Everything a unit guarantees:

- the compare-and-set ``UPDATE`` on ``version`` must change exactly one row, else
  :class:`~fsm.errors.ConcurrentTransition`;
- the log's unique ``(instance_id, idempotency_key)`` refusing a row raises the private
  :class:`~fsm._signals.KeyTaken`, the live reference index
  :class:`~fsm._signals.ReferenceTaken`;
- lock contention the database gave up on (SQLite's "database is locked", PostgreSQL's lock
  timeout, deadlock or serialisation failure) raises :class:`~fsm._signals.Contention`;
- every other database failure leaves as :class:`~fsm.errors.StorageError`, translated by the
  store's :class:`~fsm.store.connect.Database`;
- on PostgreSQL the instance is read ``FOR UPDATE``;
- the unit commits whole or rolls back whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from fsm._signals import Contention, KeyTaken, ReferenceTaken
from fsm.chain.keys import HASH_ONLY
from fsm.chain.link import Chain, instance_values, record_values
from fsm.definition import BINDABLE_FIELDS
from fsm.errors import (
    ConcurrentTransition,
    ConfigurationError,
    InstanceNotFound,
    InvalidInstanceData,
)
from fsm.events import Event
from fsm.model import Instance, RejectedEvent, TransitionRecord
from fsm.store.chained import INSTANCE_ID, LOG_ID, instance_rows, log_rows, with_times
from fsm.store.connect import Database
from fsm.store.protocol import Along
from fsm.store.statements import (
    REPLAY_CHUNK,
    UnitSql,
    dump_payload,
    log_args,
    outbox_args,
    rejected_args,
)

_CURSOR = "fsm.unit_cursor"
"""Where a pooled connection's ``info`` keeps the cursor units run on."""


class Unit:
    """One database transaction: ``with store.unit() as unit:`` commits on success, else rolls back.

    A connection is checked out of the pool on entry and checked back in on exit (the pool's
    reset rolls back whatever an interrupted unit left open). When the first statement finds
    the connection gone (a restarted server, an ended session), the unit invalidates it, checks
    out another and runs the statement again: nothing was sent on the dead connection, so
    nothing can be lost or applied twice. A later statement finding it gone fails the unit.
    """

    __slots__ = (
        "_broken",
        "_chain",
        "_connection",
        "_cursor",
        "_database",
        "_fresh",
        "_pooled",
        "_seen",
        "_sql",
    )

    def __init__(self, database: Database, sql: UnitSql, chain: Chain) -> None:
        """Prepare a unit; the connection is checked out on entry."""
        self._database = database
        self._sql = sql
        self._chain = chain
        self._seen: dict[str, tuple[Instance, str, str]] = {}
        """Each instance as this unit last loaded or moved it, with its latest chain link and the
        id of the key that sealed it."""
        self._fresh = True
        self._broken = False

    def __enter__(self) -> Unit:
        """Check a connection out of the pool."""
        self._checkout()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        """Commit, or roll back when the block raised; then check the connection back in."""
        try:
            if error is None:
                self._connection.commit()
            else:
                self._rollback()
        except self._database.driver_error as failure:
            # Nothing is stored when the server refused the commit (or the rollback failed).
            # But when the connection was lost during COMMIT the outcome is in doubt: the
            # server may have committed before the reply was lost. The caller sees an error
            # either way; retrying under the same idempotency key is safe, since a committed
            # step answers the retry as a duplicate instead of applying it again.
            self._rollback()
            raise self._failure(failure) from failure
        finally:
            self._release()

    def load(self, instance_id: str) -> Instance:
        """The instance, locked until the unit ends where the database supports it.

        Raises:
            InstanceNotFound: nothing is stored under ``instance_id``.
        """
        rows = self._execute(self._sql.load, (instance_id,)).fetchall()
        if not rows:
            raise InstanceNotFound(instance_id)
        instance = self._sql.instance(rows[0])
        *_, link, key_id = rows[0]
        self._seen[instance_id] = (instance, link or "", key_id or HASH_ONLY)
        return instance

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
    ) -> Instance:
        """Compare-and-set the instance and append ``record``; returns the instance as moved.

        Raises:
            ConcurrentTransition: the version moved. The exception leaves the unit's ``with``
                block, so the transaction rolls back whole.
            KeyTaken: the log already holds the key (a private signal for the engine).
            ReferenceTaken: a bound ``reference_no`` is another live instance's (likewise).
            InvalidInstanceData: a time is naive, or ``bound`` names a column no transition
                may set; nothing was stored.
        """
        sql = self._sql
        names = tuple(sorted(bound)) if bound else ()
        cas = sql.cas.get(names)
        if cas is None:
            raise InvalidInstanceData(f"only {sorted(BINDABLE_FIELDS)} may be bound, not {names}")
        stamp = sql.write_time(record.occurred_at)
        due = None if deadline_at is None else sql.write_time(deadline_at)
        seen = self._seen.get(record.instance_id) or self._reload(record.instance_id)
        current, previous, sealed_by = seen
        chain = self._chain
        _refuse_downgrade(chain, record.instance_id, sealed_by)
        payload = dump_payload(record.payload)
        link = chain.link(previous, record_values(record, payload))
        moved = current.advanced(record, deadline_at, bound)
        seal = chain.seal(link, instance_values(moved))
        args: tuple[Any, ...] = (
            record.dest,
            record.seq,
            record.flow_version,
            due,
            stamp,
            link,
            seal,
            chain.key_id,
            record.instance_id,
            expected_version,
        )
        if names:
            args += tuple(bound[name] for name in names)
        arranged = args if cas.arrange is None else cas.arrange(args)
        # only the live-reference index can refuse the update
        updated = self._execute(cas.sql, arranged, refused=ReferenceTaken)
        if updated.rowcount != 1:
            raise ConcurrentTransition(
                record.instance_id, record.source, record.event, expected_version
            )
        self._execute(
            sql.insert_log, log_args(record, stamp, payload, link, chain.key_id), refused=KeyTaken
        )
        self._seen[record.instance_id] = (moved, link, chain.key_id)
        return moved

    def _reload(self, instance_id: str) -> tuple[Instance, str, str]:
        self.load(instance_id)
        return self._seen[instance_id]

    def reject(self, rejected: RejectedEvent) -> None:
        """Record an event that was not applied.

        Raises:
            InvalidInstanceData: its time is naive; nothing was stored.
        """
        stamp = self._sql.write_time(rejected.occurred_at)
        self._execute(self._sql.insert_rejected, rejected_args(rejected, stamp))

    def emit(self, event: Event) -> None:
        """Store ``event`` in the outbox, to be committed or rolled back with the unit."""
        self._execute(
            self._sql.insert_outbox, outbox_args(event, self._sql.write_time(event.occurred_at))
        )

    def along(self, write: Along) -> None:
        """Run ``write`` through SQLAlchemy on this unit's connection, in its transaction.

        The SQLAlchemy connection wraps the unit's pooled one and is never closed: the unit
        commits or rolls back and checks the connection in, as for its own statements. Lock
        contention in ``write`` means what it means in the unit's own statements.

        Raises:
            ConfigurationError: ``write`` committed, rolled back or closed the transaction,
                which would part the step from its writes; the unit rolls back.
        """
        self._fresh = False  # a statement sent now is part of the transaction: never resent
        conn = Connection(self._database.engine, connection=self._pooled)
        with self._database.translated():
            try:
                write(conn)
            except DBAPIError as error:
                if isinstance(error.orig, self._database.driver_error):
                    raise self._failure(error.orig) from error
                raise
        if conn.closed or not _in_transaction(self._pooled.dbapi_connection):
            self._broken = True
            raise ConfigurationError(
                "writes riding along with a step must not commit, roll back or close its "
                "transaction"
            )

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
        """Log rows of the ids, in :class:`~fsm.store.protocol.StoredStep` order, by instance and
        sequence; ``occurred_at`` only ``with_time``."""
        sql = self._sql
        for rows in self._bulk(lambda size: sql.replay(size, with_time=with_time), instance_ids):
            yield from self._times(rows, with_time)

    def chained_steps(self, instance_ids: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        """The ids' log rows as the chain is checked from (:mod:`fsm.store.chained`)."""
        sql = self._sql
        for rows in self._bulk(
            lambda size: sql.bulk("chain:log", size, LOG_ID, log_rows),
            instance_ids,
        ):
            yield from with_times(rows, sql.read_time)

    def sealed_rows(self, instance_ids: Sequence[str]) -> dict[str, tuple[Any, ...]]:
        """The ids' instance rows as the chain is checked from, by id."""
        sql = self._sql
        found: dict[str, tuple[Any, ...]] = {}
        for rows in self._bulk(
            lambda size: sql.bulk("chain:instance", size, INSTANCE_ID, instance_rows),
            instance_ids,
        ):
            found.update((row[0], tuple(row)) for row in rows)
        return found

    def _bulk(self, statement: Callable[[int], str], instance_ids: Sequence[str]) -> Iterator[Any]:
        """The rows of ``statement`` for every id: one query on PostgreSQL (one array parameter
        takes any number of ids), one per :data:`REPLAY_CHUNK` ids on SQLite."""
        if not self._sql.sqlite:
            if instance_ids:
                yield self._execute(statement(0), (list(instance_ids),)).fetchall()
            return
        for start in range(0, len(instance_ids), REPLAY_CHUNK):
            chunk = list(instance_ids[start : start + REPLAY_CHUNK])
            size = 1 << (len(chunk) - 1).bit_length()  # a few statement sizes, padded by repeats
            chunk.extend(chunk[-1:] * (size - len(chunk)))
            yield self._execute(statement(size), chunk).fetchall()

    def _times(self, rows: list[Any], with_time: bool) -> Iterable[Any]:
        if not with_time:
            return rows
        read = self._sql.read_time
        return ((*row[:8], read(row[8])) for row in rows)

    def _execute(
        self, sql: str, args: Sequence[Any], *, refused: type[Exception] | None = None
    ) -> Any:
        """Run ``sql`` on the cursor; a constraint refusing it raises ``refused`` when given."""
        try:
            self._cursor.execute(sql, args)
        except self._database.driver_error as error:
            if not (self._fresh and self._database.is_disconnect(error, self._connection, None)):
                raise self._failure(error, refused) from error
            self._reconnect(error)
            try:
                self._cursor.execute(sql, args)
            except self._database.driver_error as again:
                raise self._failure(again, refused) from again
        self._fresh = False
        return self._cursor

    def _failure(self, error: Exception, refused: type[Exception] | None = None) -> Exception:
        """What a driver error means to the unit's caller."""
        database = self._database
        if refused is not None and isinstance(error, database.integrity_error):
            return refused()
        if database.is_disconnect(error, self._connection, None):
            self._broken = True
        if database.is_contention(error):
            return Contention()
        return database.translate(error)

    def _checkout(self) -> None:
        """Check a connection out, with the cursor units keep on it.

        The cursor lives in the pooled connection's ``info``, which SQLAlchemy clears when it
        replaces the connection; a unit reads every result to its end, so between units the
        cursor holds nothing another unit could see.
        """
        pooled = self._database.checkout()
        self._pooled = pooled
        self._connection = cast(Any, pooled.dbapi_connection)
        cursor = pooled.info.get(_CURSOR)
        if cursor is None:
            cursor = pooled.info[_CURSOR] = self._connection.cursor()
        self._cursor = cursor

    def _reconnect(self, error: BaseException) -> None:
        """Invalidate the dead connection (its pool slot reconnects) and check out again."""
        self._fresh = False
        self._pooled.invalidate(error)
        self._checkout()

    def _rollback(self) -> None:
        try:
            self._connection.rollback()
        except self._database.driver_error:  # gone: the server dropped the transaction with it
            self._broken = True

    def _release(self) -> None:
        pooled = self._pooled
        if not pooled.is_valid:  # invalidated by a reconnect that then failed: checked in already
            return
        if self._broken:
            pooled.invalidate()  # closed and checked in: its slot reconnects when next used
        else:
            pooled.close()


def _refuse_downgrade(chain: Chain, instance_id: str, sealed_by: str) -> None:
    """Refuse to extend a signed chain without a key: the step would only be hashed, which
    :mod:`fsm.chain.verify` rightly reads as tampered (a service whose key went missing)."""
    if chain.keys is None and sealed_by != HASH_ONLY:
        raise ConfigurationError(
            f"{instance_id}'s audit chain is signed with key {sealed_by!r} and this store holds"
            " no audit key: set $EWALLET_FSM_AUDIT_KEY; nothing was stored"
        )


def _in_transaction(raw: Any) -> bool:
    """Whether the driver's connection is still inside a transaction (sqlite3's flag, else
    psycopg's transaction status, where 0 is idle)."""
    if raw is None:
        return False
    flag = getattr(raw, "in_transaction", None)
    if isinstance(flag, bool):
        return flag
    return bool(raw.info.transaction_status != 0)


__all__ = ["Unit"]
