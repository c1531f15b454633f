"""Where a unit gets its driver connection: a few kept idle between units, or the pool's.

Checking a connection out of SQLAlchemy's pool and back costs a unit about 14 µs of Python
(checkout events, the reset rollback on return, weak references, a locked queue): a fifth of a
whole durable fire on SQLite. A unit always ends its own transaction, so it needs none of that.
:class:`KeptConnections` takes connections from the pool once, so the pool's connect-time setup
(SQLite's pragmas) applies, detaches them, and keeps at most ``keep`` idle between units in a
list; a connection returned while that many wait, or broken, is closed. Nothing is tied to a
thread, so a thread that ends leaves nothing behind. :class:`PooledConnections` checks out of
the pool for every unit, for stores that want the pool's ``pre_ping`` on each use.
"""

from __future__ import annotations

import os
import weakref
from contextlib import suppress
from typing import Any, Protocol, cast

from sqlalchemy import Engine


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
        self._pid = os.getpid()
        self._finalizer = weakref.finalize(self, _close_all, self._idle, driver_error)

    def take(self) -> tuple[Any, Any, Any]:
        """An idle connection (the latest returned), or a new one; the token is its generation."""
        if os.getpid() != self._pid:  # a forked child must not talk on its parent's sockets
            self._forget_inherited()
        try:
            connection, cursor = self._idle.pop()
        except IndexError:
            connection = self._open()
            cursor = connection.cursor()
        return connection, cursor, self._generation

    def give_back(self, connection: Any, cursor: Any, token: Any, *, broken: bool) -> None:
        """Keep ``connection`` idle, or close it when broken, surplus or from before a close."""
        if broken or token != self._generation or len(self._idle) >= self._keep:
            _close_quietly(connection, self._error)
        else:
            self._idle.append((connection, cursor))

    def close(self) -> None:
        """Close the idle connections; those in use are closed as they come back."""
        self._generation += 1
        _close_all(self._idle, self._error)

    def _open(self) -> Any:
        fairy = self._engine.raw_connection()
        connection = fairy.driver_connection
        fairy.detach()  # the pool forgets it: its slot is free, and closing it closes it
        return connection

    def _forget_inherited(self) -> None:
        self._pid = os.getpid()
        self._generation += 1
        self._idle.clear()


class PooledConnections:
    """A checkout of ``engine``'s pool per unit (with its pre-ping, when configured)."""

    def __init__(self, engine: Engine) -> None:
        """Check out of ``engine``'s pool, whichever pool it holds at the time."""
        self._engine = engine

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


def _close_all(connections: list[tuple[Any, Any]], driver_error: type[Exception]) -> None:
    while connections:
        _close_quietly(connections.pop()[0], driver_error)


def _close_quietly(connection: Any, driver_error: type[Exception]) -> None:
    """Close a connection that may already be dead; there is nothing to save on it."""
    with suppress(driver_error):  # a dead connection may refuse even to close: it is gone
        connection.close()


__all__ = ["ConnectionSource", "KeptConnections", "PooledConnections"]
