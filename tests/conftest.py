"""Shared fixtures: stores in memory, on SQLite and PostgreSQL, and a guard that keeps tests on
loopback."""

from __future__ import annotations

import ipaddress
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from adapters.inbound.journal import INBOUND_TABLE
from adapters.reconcile.journal import CALL_INTENT_TABLE
from adapters.reconcile.work import STATUS_WORK_TABLE
from fsm.engine import Engine
from fsm.store.memory import MemoryStore
from fsm.store.sql import SqlStore
from fsm.store.tables import OUTBOX_TABLE, TABLES

AnyStore = MemoryStore | SqlStore
"""A store the engine's contract tests run on: each of them, one after the other."""
SCHEMA_TABLES = (*TABLES, INBOUND_TABLE, CALL_INTENT_TABLE, OUTBOX_TABLE, STATUS_WORK_TABLE)
"""Every table the migrations create: the engine's, the adapters' journals, the outbox, then the
status checks requested of a worker."""

PG_URL = os.environ.get("EWALLET_FSM_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("EWALLET_FSM_REQUIRE_POSTGRES") == "1"


def _postgres_problem() -> str | None:
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:  # any failure to connect means "unreachable" here
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return None


_PG_PROBLEM: list[str | None] = []


def postgres_url_or_skip() -> str:
    """The PostgreSQL URL; skips (or fails, when required) if the server is unreachable."""
    if not _PG_PROBLEM:
        _PG_PROBLEM.append(_postgres_problem())
    problem = _PG_PROBLEM[0]
    if problem is not None:
        message = f"PostgreSQL unreachable at {PG_URL} ({problem})"
        if REQUIRE_PG:
            pytest.fail(message + "; EWALLET_FSM_REQUIRE_POSTGRES=1 requires it")
        pytest.skip(message)
    return PG_URL


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped after the test."""
    base = postgres_url_or_skip()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'create schema "{schema}"'))
    try:
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'drop schema "{schema}" cascade'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file, then a PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fsm.sqlite3'}"
        return
    yield request.getfixturevalue("postgres_schema_url")


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    """A store with its schema created, on each database."""
    yield from _created(db_url)


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AnyStore]:
    """A fresh store in memory, then on each database: for what every store must do alike."""
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "sqlite":
        yield from _created(f"sqlite:///{tmp_path / 'fsm.sqlite3'}")
    else:
        yield from _created(request.getfixturevalue("postgres_schema_url"))


def _created(url: str) -> Iterator[SqlStore]:
    sql_store = SqlStore(url)
    sql_store.create_schema()
    yield sql_store
    sql_store.dispose()


def database(engine: Engine) -> SqlStore:
    """The SQL store under ``engine``, for a test that reads the database itself."""
    store = engine.store
    assert isinstance(store, SqlStore)
    return store


@pytest.fixture(autouse=True)
def _no_audit_key_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests choose their audit keys themselves: none from the environment they run in."""
    monkeypatch.delenv("EWALLET_FSM_AUDIT_KEY", raising=False)


@pytest.fixture(autouse=True, scope="session")
def _loopback_only() -> Iterator[None]:
    """Refuse any connection that would leave this machine."""
    original = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
                raise OSError(f"tests may only connect to loopback, not {host}")
        return original(self, address)

    socket.socket.connect = guarded  # type: ignore[method-assign,assignment]
    yield
    socket.socket.connect = original  # type: ignore[method-assign]
