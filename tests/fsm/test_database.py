"""The store's one database stack: its pool's connections, and the one family of errors it raises.

Every connection, for units and for reads alike, comes from the engine's pool and gets the same
setup; a caller working alone keeps reusing one connection. Whatever the database does wrong
reaches the caller as ``StorageError`` (``StorageUnavailable`` when a retry may help), with the
driver's first line as its message and the driver's exception as its cause, never as a
``sqlite3``, ``psycopg`` or ``sqlalchemy.exc`` error.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, exc
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

from fsm import Engine, ManualClock, SqlStore
from fsm.errors import ConcurrentTransition, FsmError, StorageError, StorageUnavailable
from fsm.flows import FLOWS
from fsm.store.leases import Leases
from tests.fsm.conftest import T0


@pytest.fixture
def normal_store(tmp_path: Path) -> Iterator[SqlStore]:
    store = SqlStore(f"sqlite:///{tmp_path / 'pool.sqlite3'}", sqlite_synchronous="NORMAL")
    store.create_schema()
    yield store
    store.dispose()


def count_connections(store: SqlStore) -> list[Any]:
    """Every driver connection the store opens from now on."""
    opened: list[Any] = []

    @event.listens_for(store.engine, "connect")
    def _opened(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        opened.append(dbapi_connection)

    return opened


def test_units_and_reads_of_one_caller_reuse_one_connection(store: SqlStore) -> None:
    engine = Engine(store, flows=FLOWS, clock=ManualClock(T0))
    opened = count_connections(store)
    pid = engine.start("ewallet_payment", wallet="ovo", amount=1000).id
    for _ in range(3):  # applied, then answered twice as a duplicate
        engine.fire(pid, "send_registration", actor="merchant", idempotency_key="reg")
        store.get(pid)
        store.history(pid)
    assert len(opened) <= 1  # the pool hands out the connection it took back last


def test_every_pooled_connection_gets_the_stores_sqlite_setup(normal_store: SqlStore) -> None:
    with normal_store.unit() as unit:
        unit.history("nobody")
        with normal_store.engine.connect() as other:  # a second connection, while one is in use
            pragmas = [
                other.exec_driver_sql(f"pragma {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys")
            ]
    assert pragmas == ["wal", 1, 1]  # WAL, NORMAL, on


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


def assert_translated(error: StorageError) -> None:
    """Ours, with the driver's words on one line and the driver's exception as its cause."""
    assert isinstance(error, FsmError)
    assert not isinstance(error, exc.SQLAlchemyError | sqlite3.Error)
    assert "\n" not in str(error)
    assert "SELECT" not in str(error).upper()  # never the statement
    assert error.__cause__ is not None
    assert not isinstance(error.__cause__, exc.SQLAlchemyError)  # the driver's own


def test_a_store_without_its_schema_raises_storage_error_on_every_path(db_url: str) -> None:
    store = SqlStore(db_url)  # create_schema never ran
    engine = Engine(store, flows=FLOWS, clock=ManualClock(T0))
    try:
        calls: list[Callable[[], object]] = [
            lambda: store.get("pay-1"),  # through SQLAlchemy
            lambda: store.history("pay-1"),  # a unit, on the driver's cursor
            lambda: engine.fire(
                "pay-1", "send_registration", actor="merchant", idempotency_key="k"
            ),
            store.check_writable,
        ]
        for call in calls:
            with pytest.raises(StorageError) as raised:
                call()
            assert_translated(raised.value)
            assert not raised.value.retryable  # no table will appear by waiting
            assert not isinstance(raised.value, StorageUnavailable)
    finally:
        store.dispose()


def test_a_locked_sqlite_file_is_storage_unavailable_outside_units(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite3"
    store = SqlStore(f"sqlite:///{path}", sqlite_busy_timeout=0.05)
    store.create_schema()
    engine = Engine(store, flows=FLOWS, clock=ManualClock(T0))
    pid = engine.start("ewallet_payment", wallet="ovo", amount=1000).id
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        writes_beside_units: list[Callable[[], object]] = [
            lambda: engine.start("ewallet_payment", wallet="ovo", amount=1000),
            lambda: Leases(store).claim(pid, owner="r1", now=T0, lease=timedelta(seconds=30)),
        ]
        for write in writes_beside_units:
            with pytest.raises(StorageUnavailable, match="locked") as raised:
                write()
            assert raised.value.retryable
            assert_translated(raised.value)
        with pytest.raises(ConcurrentTransition):  # inside a unit: the engine's lost race
            engine.fire(pid, "send_registration", actor="merchant", idempotency_key="reg")
        other.execute("ROLLBACK")
        assert engine.fire(pid, "send_registration", actor="merchant", idempotency_key="reg")
    finally:
        other.close()
        store.dispose()


@pytest.mark.postgres
def test_an_unreachable_server_is_storage_unavailable() -> None:
    store = SqlStore("postgresql://app:s3cret@127.0.0.1:9/payments")
    try:
        for call in (lambda: store.get("pay-1"), lambda: store.history("pay-1")):
            with pytest.raises(StorageUnavailable, match="connection") as raised:
                call()
            assert_translated(raised.value)
            assert "s3cret" not in str(raised.value)
    finally:
        store.dispose()
