"""A store's database: one SQLAlchemy engine, and the one place where its errors become ours.

**The pool.** Every connection comes from the engine's SQLAlchemy pool (a ``QueuePool`` for a
SQLite file or a server; SQLAlchemy's own choice for a SQLite database in memory), configured
last in, first out (``pool_use_lifo``): a single-threaded caller keeps reusing one warm
connection, and connections a burst opened sit idle at the far end. SQLite connections get the
store's pragmas in a ``connect`` listener, so every pooled connection runs in WAL mode with the
chosen ``synchronous`` level and foreign keys on.

**Disconnects** (SQLAlchemy's "Dealing with Disconnects"). ``pool_pre_ping`` is off unless asked
for (``SqlStore(pre_ping=True)``), since it costs a ``SELECT 1`` round trip on every checkout.
Instead, on a server database a ``checkout`` listener polls the idle connection's socket, which
costs no round trip: a server that restarts or ends a session says so on the socket before
closing it. A readable socket raises SQLAlchemy's ``InvalidatePoolError``, so the pool replaces
that connection and every other one it opened before (a restart ended them all). A connection
that died without a word (a firewall dropping idle sessions) fails its first statement: SQLAlchemy
invalidates the pool on that error, the call fails with :class:`~fsm.errors.StorageUnavailable`,
and a retry gets a new connection; a unit of work retries its first statement itself
(:class:`~fsm.store.unit.Unit`).

**Fork** (SQLAlchemy's "Using Connection Pools with Multiprocessing or os.fork()"). A forked child
must neither talk on its parent's connections nor close them (closing ends the parent's server
sessions). As SQLAlchemy documents, the child calls ``engine.dispose(close=False)``: here from
an ``os.register_at_fork`` hook, for every pooled engine a store opened, so the child's pool
opens connections of its own. A SQLite database in memory lives in its one connection and keeps
it.

**Errors.** :meth:`Database.translated` is the boundary: a driver or SQLAlchemy exception that
leaves the store's work becomes a :class:`~fsm.errors.StorageError`, a
:class:`~fsm.errors.StorageUnavailable` when trying again later may help, with the driver's
first line as its message and the driver's exception as its cause. A unit of work hands its
driver errors to the same translation (:meth:`Database.translate`).
"""

from __future__ import annotations

import os
import select as io_select
import sqlite3
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import URL, Connection, Dialect, Engine, create_engine, event, exc, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection, QueuePool

from fsm.errors import FsmError, StorageError, StorageUnavailable

_SQLITE_TRANSIENT = frozenset(
    {"BUSY", "LOCKED", "READONLY", "IOERR", "FULL", "CANTOPEN", "PROTOCOL", "NOMEM", "INTERRUPT"}
)
"""SQLite result codes (``SQLITE_<CODE>`` and its extended codes) that mean "not now"."""
_SQLITE_CONTENTION = frozenset({"BUSY", "LOCKED"})
_SERVER_TRANSIENT_CLASSES = frozenset({"08", "40", "53", "57", "58"})
"""PostgreSQL SQLSTATE classes that mean "not now": connection, transaction rollback,
insufficient resources, operator intervention, system error."""
_SERVER_TRANSIENT_STATES = frozenset({"25006", "55P03"})
"""A read-only transaction (a standby, or a server set read-only) and a lock not available."""
_SERVER_CONTENTION = frozenset({"40001", "40P01", "55P03"})
"""Serialisation failure, deadlock and lock-not-available."""
_SQLALCHEMY_TRANSIENT = (exc.DisconnectionError, exc.TimeoutError)
"""A connection lost at checkout, and the pool's wait for a free connection running out."""
_WAL_SWITCH_SECONDS = 30.0


def normalise_url(url: str) -> str:
    """Point bare PostgreSQL URLs at psycopg 3, the driver this project installs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Database:
    """A store's engine and pool, and the boundary where its database errors are translated."""

    def __init__(
        self, url: str, *, sqlite_synchronous: str, sqlite_busy_timeout: float, pre_ping: bool
    ) -> None:
        """Create the engine for ``url`` (see :class:`~fsm.store.sql.SqlStore` for the options)."""
        self.url = normalise_url(url)
        self.engine: Engine = create_engine(
            self.url, **_engine_options(make_url(self.url), sqlite_busy_timeout, pre_ping)
        )
        self.dialect: Dialect = self.engine.dialect
        self.sqlite = self.dialect.name == "sqlite"
        dbapi = self.dialect.loaded_dbapi
        self.driver_error: type[Exception] = dbapi.Error
        self.integrity_error: type[Exception] = dbapi.IntegrityError
        self._operational_error: type[Exception] = dbapi.OperationalError
        if self.sqlite:
            _set_pragmas_on_connect(self.engine, sqlite_synchronous)
        elif not pre_ping:
            _refuse_hung_up_connections(self.engine)
        if isinstance(self.engine.pool, QueuePool):
            _REPLACE_AFTER_FORK.add(self.engine)

    @contextmanager
    def connect(self, doing: str = "") -> Iterator[Connection]:
        """A pooled SQLAlchemy connection; its errors leave as :class:`~fsm.errors.StorageError`.

        ``doing`` prefixes the error's message (``"cannot write to the database"``).
        """
        with self.translated(doing), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def begin(self, refused: type[Exception] | None = None) -> Iterator[Connection]:
        """One transaction on a pooled connection, committed when the block ends.

        A constraint refusing a write raises ``refused`` when given; every other database
        failure leaves as :class:`~fsm.errors.StorageError`.
        """
        with self.translated(refused=refused), self.engine.begin() as conn:
            yield conn

    def checkout(self) -> PoolProxiedConnection:
        """A connection checked out of the pool for a unit of work (its errors translated)."""
        try:  # no context manager: a unit checks out on every event
            return self.engine.raw_connection()
        except (exc.SQLAlchemyError, self.driver_error) as error:
            raise self.translate(error) from _driver_error(error)

    def dispose(self) -> None:
        """Close every pooled connection that is not checked out."""
        self.engine.dispose()

    @contextmanager
    def translated(
        self, doing: str = "", *, refused: type[Exception] | None = None
    ) -> Iterator[None]:
        """The boundary: driver and SQLAlchemy errors raised in the block become the library's."""
        try:
            yield
        except (exc.SQLAlchemyError, self.driver_error) as error:
            driver = _driver_error(error)
            if refused is not None and isinstance(driver, self.integrity_error):
                raise refused() from driver
            if isinstance(error, exc.StatementError) and isinstance(error.orig, FsmError):
                raise error.orig from None  # our own check refused a value as SQLAlchemy bound it
            raise self.translate(error, doing) from driver

    def translate(self, error: BaseException, doing: str = "") -> StorageError:
        """``error`` (a driver's, or SQLAlchemy's) as a :class:`~fsm.errors.StorageError`."""
        driver = _driver_error(error)
        text = _first_line(driver)
        message = f"{doing}: {text}" if doing else text
        if self._retryable(error, driver):
            return StorageUnavailable(message)
        return StorageError(message)

    def is_contention(self, error: BaseException) -> bool:
        """Whether the driver gave up waiting for a lock another writer held (a lost race)."""
        name = getattr(error, "sqlite_errorname", None)
        if name is not None:
            return _sqlite_code(name) in _SQLITE_CONTENTION
        return getattr(error, "sqlstate", None) in _SERVER_CONTENTION

    def is_disconnect(self, error: BaseException, connection: Any, cursor: Any) -> bool:
        """Whether ``error`` means the connection is gone (SQLAlchemy's test for the dialect)."""
        return isinstance(error, self.driver_error) and self.dialect.is_disconnect(
            cast(Any, error), connection, cursor
        )

    def _retryable(self, error: BaseException, driver: BaseException) -> bool:
        if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
            return True
        if isinstance(error, _SQLALCHEMY_TRANSIENT):
            return True
        name = getattr(driver, "sqlite_errorname", None)
        if name is not None:
            return _sqlite_code(name) in _SQLITE_TRANSIENT
        state = getattr(driver, "sqlstate", None)
        if state:
            return state[:2] in _SERVER_TRANSIENT_CLASSES or state in _SERVER_TRANSIENT_STATES
        # no code: the driver failed to connect or lost the socket before the server answered
        return isinstance(driver, self._operational_error) or self.is_disconnect(driver, None, None)


def _engine_options(url: URL, busy_timeout: float, pre_ping: bool) -> dict[str, Any]:
    if url.get_backend_name() != "sqlite":
        return {"pool_use_lifo": True, "pool_pre_ping": pre_ping}
    # the driver's own busy wait: writers queue this long, then "database is locked"
    connect_args = {"timeout": busy_timeout, "check_same_thread": False}
    if url.database in {None, "", ":memory:"} or url.query.get("mode") == "memory":
        return {"connect_args": connect_args}  # one connection holds the database: no order
    return {"connect_args": connect_args, "pool_use_lifo": True}


def _driver_error(error: BaseException) -> BaseException:
    """The driver's own exception inside a SQLAlchemy wrapper, or ``error`` itself."""
    if isinstance(error, exc.DBAPIError) and error.orig is not None:
        return error.orig
    return error


def _sqlite_code(name: str) -> str:
    """``BUSY`` from ``SQLITE_BUSY`` or ``SQLITE_BUSY_SNAPSHOT``."""
    return name.split("_")[1] if name.count("_") else name


def _first_line(error: BaseException) -> str:
    """The error's first line: the driver's words, never a statement or its parameters."""
    if isinstance(error, exc.SQLAlchemyError):  # its own message, without the statement
        text = str(error.args[0]) if error.args else ""
    else:
        text = str(error)
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else type(error).__name__


def server_hung_up(connection: Any) -> bool:
    """Whether an idle connection's socket is readable: the server closed it, or said why.

    An idle connection has nothing else to read, so polling its socket sees a restart or an
    ended session at no round trip's cost.
    """
    if getattr(connection, "closed", False):
        return True
    poller = io_select.poll()
    poller.register(connection.fileno(), io_select.POLLIN)
    return bool(poller.poll(0))


def _refuse_hung_up_connections(engine: Engine) -> None:
    """At checkout, replace a connection the server has closed, and every one opened before it."""

    @event.listens_for(engine, "checkout")
    def _check(
        dbapi_connection: DBAPIConnection,
        _record: ConnectionPoolEntry,
        _proxy: PoolProxiedConnection,
    ) -> None:
        if server_hung_up(dbapi_connection):
            raise exc.InvalidatePoolError("the server closed the connection")


def _set_pragmas_on_connect(engine: Engine, synchronous: str) -> None:
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


_REPLACE_AFTER_FORK: weakref.WeakSet[Engine] = weakref.WeakSet()
"""Pooled engines whose pool a forked child replaces, leaving the parent's connections alone."""


def _replace_pools_in_child() -> None:
    for engine in list(_REPLACE_AFTER_FORK):
        engine.dispose(close=False)


if hasattr(os, "register_at_fork"):  # POSIX; elsewhere there is no fork to survive
    os.register_at_fork(after_in_child=_replace_pools_in_child)


__all__ = ["Database", "normalise_url", "server_hung_up"]
