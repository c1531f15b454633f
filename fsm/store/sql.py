""":class:`SqlStore`: instances, their logs and units in one SQL database, SQLite or PostgreSQL.

An applied transition is one database transaction: a compare-and-set ``UPDATE`` of the instance
on its ``version`` and the ``INSERT`` of its log row. On PostgreSQL the instance row is also
locked (``SELECT ... FOR UPDATE``) before the decision, so contending writers queue instead of
retrying. On SQLite the file runs in WAL mode; the driver begins the write transaction at the
first ``UPDATE``, so a writer that lost the race finds the version moved and raises
:class:`~fsm.errors.ConcurrentTransition`. The log is append-only, and ``(instance_id,
idempotency_key)`` is unique there, so no race can apply one key twice.

Everything runs on one SQLAlchemy engine and its pool (:mod:`fsm.store.connect`). The hot path
(:meth:`SqlStore.unit`, history and replay reads) runs Core statements on the sqlmodel tables
(:mod:`fsm.store.tables`), compiled once per dialect, on the DBAPI cursor of a pooled connection
(:mod:`fsm.store.unit`); the other reads (:mod:`fsm.store._queries`) and writes go through
SQLAlchemy's ``Connection`` and its statement cache. Reconcilers' leases
(:class:`~fsm.store.leases.Leases`) and the adapters' journals keep their rows in the same
database, on connections and in transactions of their own (:meth:`SqlStore.connection`,
:meth:`SqlStore.transaction`), whose errors are translated like the store's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict
from typing import Any

from sqlalchemy import Connection, Engine, insert

import fsm.store._queries as _queries
from fsm._signals import Refused
from fsm.chain.keys import AuditKeys
from fsm.chain.link import Chain, instance_values
from fsm.chain.verify import ChainedRows
from fsm.errors import InstanceExists, ReferenceInUse, RejectReason
from fsm.model import Instance, RejectedEvent, TransitionRecord
from fsm.store.connect import Database, normalise_url
from fsm.store.listing import InstanceFilter, InstancePage, make_page, page_query
from fsm.store.protocol import StoredStep
from fsm.store.schema import current_revision, migrate_to_head, touch_version
from fsm.store.statements import UnitSql
from fsm.store.tables import INSTANCE_TABLE
from fsm.store.unit import Unit

DEFAULT_DB_URL = "sqlite:///ewallet-fsm.sqlite3"
"""The embedded default: a SQLite file in the working directory."""

_INSTANCE = INSTANCE_TABLE


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
        audit_keys: AuditKeys | None = None,
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
            audit_keys: the keys the audit chain is signed and checked with (:mod:`fsm.chain`);
                without them every row is linked by a plain SHA-256 hash chain.
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
        self.chain = Chain(audit_keys)
        """How this store links and seals rows, and checks them."""

    def create_schema(self) -> None:
        """Create the schema, or migrate it to the latest revision; safe to call at any time.

        Runs the package's Alembic migrations to ``head`` in one transaction. A database
        created before migrations existed is recognised by its tables and stamped first.
        Concurrent callers queue: on PostgreSQL behind an advisory lock, on SQLite behind the
        file's write lock (``BEGIN IMMEDIATE``); whoever comes second finds nothing to do.
        """
        with self._database.translated():
            migrate_to_head(self.engine)

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
                conn.execute(insert(_INSTANCE), {**asdict(instance), **self._sealed(instance)})
        except Refused:
            live = None
            if instance.reference_no is not None and instance.deadline_at is not None:
                with self._database.connect() as conn:
                    live = _queries.live_with_reference(conn, instance.flow, instance.reference_no)
            if live is not None and live != instance.id:
                raise ReferenceInUse(instance.flow, instance.reference_no or "", live) from None
            raise InstanceExists(instance.id) from None

    def _sealed(self, instance: Instance) -> dict[str, str]:
        chain = self.chain
        seal = chain.seal("", instance_values(instance))
        return {"chain_link": "", "chain_seal": seal, "chain_key": chain.key_id}

    def get(self, instance_id: str) -> Instance:
        """The stored instance.

        Raises:
            InstanceNotFound: nothing is stored under ``instance_id``.
        """
        with self._database.connect() as conn:
            return _queries.load(conn, instance_id)

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

    def chained(self, instance_ids: Iterable[str]) -> Iterator[ChainedRows]:
        """Each id's instance row and log rows as the audit chain is checked from.

        In the order given; the instance row is ``None`` when it is missing. Read in one
        transaction, so a writer's step is seen in both or in neither.
        """
        ids = list(dict.fromkeys(instance_ids))
        with self.unit() as unit:
            sealed = unit.sealed_rows(ids)
            steps: dict[str, list[tuple[Any, ...]]] = {}
            for row in unit.chained_steps(ids):
                steps.setdefault(row[0], []).append(row)
        for instance_id in ids:
            yield ChainedRows(instance_id, sealed.get(instance_id), steps.get(instance_id, []))

    def instance_ids(self) -> list[str]:
        """Every id the database holds rows of: its instances and any log without one."""
        with self._database.connect() as conn:
            return _queries.every_id(conn)

    def rejections(self, instance_id: str) -> list[RejectedEvent]:
        """The instance's refused events in the order they arrived."""
        with self._database.connect() as conn:
            return _queries.rejections(conn, instance_id)

    def has_rejection(self, instance_id: str, idempotency_key: str) -> bool:
        """Whether a refused event under ``idempotency_key`` is recorded for the instance."""
        with self._database.connect() as conn:
            return _queries.has_rejection(conn, instance_id, idempotency_key)

    def count_rejections(self, reason: RejectReason, *, instance_id: str | None = None) -> int:
        """How many events were refused for ``reason``, in all or for one instance.

        For an operator: ``RejectReason.UNKNOWN_STATUS`` counts inquiry answers with a code
        outside the table.
        """
        with self._database.connect() as conn:
            return _queries.count_rejections(conn, reason, instance_id)

    def find(self, *, tx_id: str | None = None, reference_no: str | None = None) -> list[Instance]:
        """Instances with the given provider transaction id and/or reference, by id."""
        with self._database.connect() as conn:
            return _queries.find(conn, tx_id=tx_id, reference_no=reference_no)

    def live_ids(self, flow: str, *, flow_version: int) -> list[str]:
        """Ids of the unfinished instances of ``flow`` pinned to ``flow_version``, by id."""
        with self._database.connect() as conn:
            return _queries.live_ids(conn, flow, flow_version)

    def list_instances(self, *, limit: int = 1000) -> list[Instance]:
        """Stored instances, oldest first."""
        with self._database.connect() as conn:
            return _queries.oldest_first(conn, limit=limit)

    def page_instances(
        self, where: InstanceFilter | None = None, *, limit: int = 50, cursor: str | None = None
    ) -> InstancePage:
        """One page of the instances matching ``where``, newest first (:mod:`~fsm.store.listing`).

        Raises:
            InvalidInstanceData: a bad ``limit``, a naive time, or a cursor no listing gave.
        """
        query = page_query(where or InstanceFilter(), limit=limit, cursor=cursor)
        with self._database.connect() as conn:
            rows = [_queries.instance(row._asdict()) for row in conn.execute(query)]
        return make_page(rows, limit)

    def check_writable(self) -> None:
        """Make sure the database takes a write: write the schema's version row, roll it back.

        Raises:
            StorageUnavailable: the database cannot be reached, is read-only, or stays locked;
                the message says so with the driver's first line.
            StorageError: it failed otherwise (no schema, most likely).
        """
        with self._database.translated("cannot write to the database"):
            touch_version(self.engine)

    def connection(self) -> AbstractContextManager[Connection]:
        """A pooled SQLAlchemy connection for reads of rows kept beside the store's own.

        For the objects that keep rows of their own in this database (the reconcilers'
        :class:`~fsm.store.leases.Leases`, the adapters' journals); a database failure leaves
        the block as :class:`~fsm.errors.StorageError`.
        """
        return self._database.connect()

    def transaction(
        self, *, refused: type[Exception] | None = None
    ) -> AbstractContextManager[Connection]:
        """A short write transaction through SQLAlchemy, committed when the block ends.

        For the same objects as :meth:`connection`. A unique or foreign key refusing a write
        raises ``refused`` (an exception class of the caller's, raised without arguments) when
        given; every other database failure, lock contention included, leaves the block as
        :class:`~fsm.errors.StorageError`.
        """
        return self._database.begin(refused)

    def unit(self) -> Unit:
        """One database transaction on the driver cursor of a pooled connection.

        ``with store.unit() as unit:`` commits when the block ends and rolls back whole when it
        raises. Lock contention the database gave up on, and the log's unique key, surface as
        the engine's private signals (:mod:`fsm._signals`); other database failures as
        :class:`~fsm.errors.StorageError`.
        """
        return Unit(self._database, self._sql, self.chain)


__all__ = ["DEFAULT_DB_URL", "SqlStore", "normalise_url"]
