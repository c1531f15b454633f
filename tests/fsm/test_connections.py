"""The connections units keep between them: few, set up as the pool sets them up, and closed."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fsm import Engine, ManualClock, SqlStore
from fsm.flows import FLOWS
from fsm.store._connections import KeptConnections
from tests.fsm.conftest import T0


@pytest.fixture
def normal_store(tmp_path: Path) -> Iterator[SqlStore]:
    store = SqlStore(f"sqlite:///{tmp_path / 'kept.sqlite3'}", sqlite_synchronous="NORMAL")
    store.create_schema()
    yield store
    store.dispose()


def usable(connection: sqlite3.Connection) -> bool:
    try:
        connection.execute("select 1")
    except sqlite3.ProgrammingError:  # "Cannot operate on a closed database."
        return False
    return True


def test_at_most_keep_connections_wait_idle(normal_store: SqlStore) -> None:
    kept = KeptConnections(normal_store.engine, keep=2, driver_error=sqlite3.Error)
    taken = [kept.take() for _ in range(3)]
    assert len({id(connection) for connection, _, _ in taken}) == 3

    for connection, cursor, token in taken:
        kept.give_back(connection, cursor, token, broken=False)

    assert [usable(connection) for connection, _, _ in taken] == [True, True, False]
    again = {id(kept.take()[0]) for _ in range(2)}
    assert again == {id(connection) for connection, _, _ in taken[:2]}


def test_broken_and_outdated_connections_are_closed_not_kept(normal_store: SqlStore) -> None:
    kept = KeptConnections(normal_store.engine, keep=5, driver_error=sqlite3.Error)
    broken, idle, busy = kept.take(), kept.take(), kept.take()
    kept.give_back(*broken, broken=True)
    kept.give_back(*idle, broken=False)

    kept.close()  # closes the idle one; the one in use is closed when it comes back
    assert not usable(broken[0])
    assert not usable(idle[0])
    assert usable(busy[0])
    kept.give_back(*busy, broken=False)
    assert not usable(busy[0])


def test_kept_connections_get_the_pools_setup(normal_store: SqlStore) -> None:
    kept = KeptConnections(normal_store.engine, keep=1, driver_error=sqlite3.Error)
    connection, cursor, token = kept.take()
    assert connection.execute("pragma journal_mode").fetchone() == ("wal",)
    assert connection.execute("pragma synchronous").fetchone() == (1,)  # NORMAL
    assert connection.execute("pragma foreign_keys").fetchone() == (1,)
    kept.give_back(connection, cursor, token, broken=False)
    kept.close()


def test_units_of_a_store_reuse_one_connection(normal_store: SqlStore) -> None:
    def connection_of_a_unit() -> int:
        with normal_store.unit() as unit:
            return id(unit._connection)

    assert len({connection_of_a_unit() for _ in range(5)}) == 1


def test_a_database_in_memory_is_one_connection_units_share_with_reads() -> None:
    store = SqlStore("sqlite://")
    try:
        store.create_schema()
        engine = Engine(store, flows=FLOWS, clock=ManualClock(T0))
        pid = engine.start("ewallet_payment", wallet="ovo", amount=1000).id
        engine.fire(pid, "send_registration", actor="merchant", idempotency_key="reg")
        assert store.get(pid).version == 1  # read through SQLAlchemy, from the same memory
        assert [record.seq for record in store.history(pid)] == [1]
    finally:
        store.dispose()


def closed(connection: Any) -> bool:
    if isinstance(connection, sqlite3.Connection):
        return not usable(connection)
    return bool(connection.closed)


def test_a_connection_given_back_inside_a_transaction_is_closed_not_kept(store: SqlStore) -> None:
    """A unit interrupted between its last statement and its commit must not pass its
    transaction on to the next unit."""
    kept = KeptConnections(store.engine, keep=2, driver_error=Exception)
    connection, cursor, token = kept.take()
    cursor.execute("begin" if store.dialect == "sqlite" else "select 1")  # a transaction is open

    kept.give_back(connection, cursor, token, broken=False)

    assert closed(connection)
    again = kept.take()
    assert again[0] is not connection
    kept.give_back(*again, broken=False)
    assert not closed(again[0])
    kept.close()
