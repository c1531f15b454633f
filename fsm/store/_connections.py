"""Where a unit gets its driver connection: a few kept idle between units, or the pool's.

Checking a connection out of SQLAlchemy's pool and back costs a unit about 14 µs of Python
(checkout events, the reset rollback on return, weak references, a locked queue): a fifth of a
whole durable fire on SQLite. A unit always ends its own transaction, so it needs none of that.
:class:`KeptConnections` takes connections from the pool once, so the pool's connect-time setup
(SQLite's pragmas) applies, detaches them, and keeps at most ``keep`` idle between units in a
list; a connection returned while that many wait, broken, or still inside a transaction, is
closed. Nothing is tied to a thread, so a thread that ends leaves nothing behind.
:class:`PooledConnections` checks out of the pool for every unit, for stores that want the
pool's ``pre_ping`` on each use.

A server that restarts ends every session at once, so when one connection is found dead, every
idle one is dropped with it (and a server connection the server has hung up on is never handed
out). A forked child neither uses nor closes what its parent opened: it forgets the parent's
connections, kept and pooled, and opens its own (closing them would end the parent's sessions).
"""

from __future__ import annotations

import os
import select as io_select
import weakref
from collections.abc import Callable
from contextlib import suppress
from typing import Any, Protocol, cast

from sqlalchemy import Engine

_PQTRANS_IDLE = 0
"""libpq's ``PQTRANS_IDLE``: connected, with no transaction open."""


class ConnectionSource(Protocol):
    """Hands a unit a driver connection with a cursor on it, and takes them back."""

    def take(self) -> tuple[Any, Any, Any]:
        """A connection with no transaction open, its cursor, and a token for :meth:`give_back`."""
        ...

    def give_back(self, connection: Any, cursor: Any, token: Any, *, broken: bool) -> None:
        """Return a connection whose transaction has ended (``broken``: it is unusable)."""
        ...

    def close(self) -> None:
        """Close what is kept idle; connections in use are closed when they are returned."""
        ...


class KeptConnections:
    """Driver connections detached from ``engine``'s pool, at most ``keep`` kept idle."""

    def __init__(self, engine: Engine, *, keep: int, driver_error: type[Exception]) -> None:
        """Keep up to ``keep`` idle connections of ``engine``'s database.

        ``driver_error`` is the driver's base error, which closing a dead connection may raise.
        """
        self._engine = engine
        self._keep = keep
        self._error = driver_error
        self._idle: list[tuple[Any, Any]] = []
        """Connections with their cursor: a unit reads every result to its end, so the cursor
        holds nothing between units."""
        self._generation = 0
        self._own_from = 0
        """The first generation this process opened; older ones a forked child inherited."""
        sqlite = engine.dialect.name == "sqlite"
        self._hung_up: Callable[[Any], bool] | None = None if sqlite else server_hung_up
        self._in_transaction = _sqlite_in_transaction if sqlite else _server_in_transaction
        self._finalizer = self._close_at_exit()
        _AFTER_FORK.add(self)

    def take(self) -> tuple[Any, Any, Any]:
        """An idle connection (the latest returned), or a new one; the token is its generation.

        An idle server connection whose socket shows the server hung up is not handed out: the
        server (restarted, most likely) ended the other idle ones too, so all are dropped.
        """
        try:
            connection, cursor = self._idle.pop()
        except IndexError:
            pass
        else:
            if self._hung_up is None or not self._hung_up(connection):
                return connection, cursor, self._generation
            self._drop_idle()
            _close_quietly(connection, self._error)
        connection = self._open()
        return connection, connection.cursor(), self._generation

    def give_back(self, connection: Any, cursor: Any, token: Any, *, broken: bool) -> None:
        """Keep ``connection`` idle; close it when it is broken, surplus, from before a close,
        or still inside a transaction (its unit was interrupted before it ended one).

        A broken connection drops every idle one too: what ended its session (a server restart,
        most likely) ended theirs.
        """
        if broken:
            self._drop_idle()
        if (
            broken
            or token != self._generation
            or len(self._idle) >= self._keep
            or self._in_transaction(connection)
        ):
            if token >= self._own_from:  # a forked child leaves its parent's sessions alone
                _close_quietly(connection, self._error)
        else:
            self._idle.append((connection, cursor))

    def close(self) -> None:
        """Close the idle connections; those in use are closed as they come back."""
        self._drop_idle()

    def forget_inherited(self) -> None:
        """In a forked child: drop the parent's connections, kept and pooled, without closing
        them (closing would end the parent's sessions); the child opens its own."""
        self._idle.clear()
        self._generation += 1
        self._own_from = self._generation
        self._finalizer.detach()
        self._finalizer = self._close_at_exit()
        self._engine.dispose(close=False)

    def _drop_idle(self) -> None:
        self._generation += 1
        _close_all(self._idle, self._error, os.getpid())

    def _close_at_exit(self) -> weakref.finalize[Any, Any]:
        """Close the idle connections when the keeper goes, only in the process that opened them."""
        return weakref.finalize(self, _close_all, self._idle, self._error, os.getpid())

    def _open(self) -> Any:
        fairy = self._engine.raw_connection()
        connection = fairy.driver_connection
        fairy.detach()  # the pool forgets it: its slot is free, and closing it closes it
        return connection


class PooledConnections:
    """A checkout of ``engine``'s pool per unit (with its pre-ping, when configured)."""

    def __init__(self, engine: Engine, *, per_process: bool = True) -> None:
        """Check out of ``engine``'s pool, whichever pool it holds at the time.

        ``per_process``: a forked child replaces the pool, to open connections of its own;
        false for a database in memory, which lives in the pool's one connection.
        """
        self._engine = engine
        if per_process:
            _AFTER_FORK.add(self)

    def take(self) -> tuple[Any, Any, Any]:
        """The checked-out connection's driver connection; the token is the checkout."""
        fairy = self._engine.raw_connection()
        connection = fairy.driver_connection
        return connection, cast(Any, connection).cursor(), fairy

    def give_back(self, connection: Any, cursor: Any, token: Any, *, broken: bool) -> None:
        """Check the connection back in; a broken one is invalidated instead of pooled."""
        cursor.close()
        if broken and token.is_valid:
            token.invalidate()
        token.close()

    def close(self) -> None:
        """Nothing is kept here: the engine's pool is disposed with the engine."""

    def forget_inherited(self) -> None:
        """In a forked child: replace the pool without closing the parent's connections."""
        self._engine.dispose(close=False)


def server_hung_up(connection: Any) -> bool:
    """Whether an idle connection's socket is readable: the server closed it, or said why.

    A server that restarts, or ends a session, says so on the socket before closing it; polling
    the socket sees that at no round trip's cost. An idle connection has nothing else to read.
    """
    if getattr(connection, "closed", False):
        return True
    poller = io_select.poll()
    poller.register(connection.fileno(), io_select.POLLIN)
    return bool(poller.poll(0))


def _sqlite_in_transaction(connection: Any) -> bool:
    return bool(connection.in_transaction)


def _server_in_transaction(connection: Any) -> bool:
    return bool(connection.pgconn.transaction_status != _PQTRANS_IDLE)


_AFTER_FORK: weakref.WeakSet[KeptConnections | PooledConnections] = weakref.WeakSet()
"""Connection sources to tell, in a forked child, that their connections are the parent's."""


def _forget_inherited_connections() -> None:
    for source in list(_AFTER_FORK):
        source.forget_inherited()


if hasattr(os, "register_at_fork"):  # POSIX; elsewhere there is no fork to survive
    os.register_at_fork(after_in_child=_forget_inherited_connections)


def _close_all(
    connections: list[tuple[Any, Any]], driver_error: type[Exception], opened_by: int
) -> None:
    """Close the connections, or only forget them outside the process that opened them."""
    if os.getpid() != opened_by:
        connections.clear()
    while connections:
        _close_quietly(connections.pop()[0], driver_error)


def _close_quietly(connection: Any, driver_error: type[Exception]) -> None:
    """Close a connection that may already be dead; there is nothing to save on it."""
    with suppress(driver_error):  # a dead connection may refuse even to close: it is gone
        connection.close()


__all__ = ["ConnectionSource", "KeptConnections", "PooledConnections", "server_hung_up"]
