"""A forked process gets connections of its own, and leaves its parent's sessions alone.

A child inherits its parent's sockets and SQLite handles. Talking on them would interleave two
processes' statements on one session; closing them would end the parent's sessions. The child
must open its own connections, and the parent must find its sessions as it left them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

from fsm import Engine, ManualClock, SqlStore
from fsm.flows import FLOWS
from tests.conftest import postgres_url_or_skip
from tests.fsm.conftest import T0
from tests.fsm.sessions import Sessions, keep_several

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

ROOT = Path(__file__).resolve().parents[2]
KEPT = 3
DATABASES = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("postgres-pre-ping", marks=pytest.mark.postgres),
]


def store_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh database; PostgreSQL sessions carry a name of their own."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'fork.sqlite3'}"
    schema_url: str = request.getfixturevalue("postgres_schema_url")
    return f"{schema_url}&application_name=ewallet-fsm-fork-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=DATABASES)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    return store_url(kind, tmp_path, request)


@pytest.fixture
def opened(url: str, kind: str) -> Iterator[tuple[SqlStore, list[tuple[Any, int]]]]:
    """A store with its schema, and every driver connection it opens with the opening process."""
    store = SqlStore(url, pre_ping=kind.endswith("pre-ping"))
    openings: list[tuple[Any, int]] = []  # holds each connection, so no id is reused

    @event.listens_for(store.engine, "connect")
    def _record(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        openings.append((dbapi_connection, os.getpid()))

    store.create_schema()
    yield store, openings
    store.dispose()


def sessions_of(store: SqlStore) -> Sessions | None:
    name = store.engine.url.query.get("application_name")
    return None if name is None else Sessions(str(name), postgres_url_or_skip())


def in_child(work: Callable[[], Any]) -> Any:
    """What ``work`` returns (JSON data) when run in a forked child, which then exits at once."""
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover -- measured in the child, which never reports coverage
        os.close(read)
        code = 1
        try:
            try:
                answer = {"value": work()}
            except Exception:  # any failure is the test's to report
                answer = {"error": traceback.format_exc()}
            os.write(write, json.dumps(answer).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    answer = json.loads(data)
    assert "error" not in answer, answer["error"]
    return answer["value"]


def test_a_forked_child_runs_units_on_connections_it_opened(
    opened: tuple[SqlStore, list[tuple[Any, int]]],
) -> None:
    store, openings = opened
    engine = Engine(store, flows=FLOWS, clock=ManualClock(T0))
    pid = engine.start("ewallet_payment", wallet="ovo", amount=1000).id
    keep_several(store, KEPT)
    assert engine.get(pid).version == 0  # the pool holds a connection idle too
    sessions = sessions_of(store)
    parents = sessions.backends() if sessions else set()

    def fire_and_tell_whose_connections() -> dict[str, Any]:
        engine.fire(pid, "send_registration", actor="merchant", idempotency_key="child")
        used = keep_several(store, KEPT + 2)  # as many as the pool holds, the parent's too
        return {
            "openers": [next((by for known, by in openings if known is c), None) for c in used],
            "backends": [getattr(getattr(c, "info", None), "backend_pid", None) for c in used],
            "pid": os.getpid(),
        }

    child = in_child(fire_and_tell_whose_connections)

    assert child["openers"] == [child["pid"]] * (KEPT + 2)
    assert not parents & set(child["backends"])
    assert engine.get(pid).version == 1  # the child's write, committed on its own session
    assert engine.fire(pid, "fail_registration", actor="timer", idempotency_key="p").applied
    if sessions:
        assert parents <= sessions.backends()  # the parent still talks on the same sessions
        sessions.close()


@pytest.mark.parametrize("database", DATABASES)
def test_a_child_exiting_leaves_its_parents_sessions_alone(
    database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = store_url(database, tmp_path, request)
    schema = SqlStore(url)
    schema.create_schema()
    schema.dispose()
    admin = [] if database == "sqlite" else [postgres_url_or_skip()]
    command = [sys.executable, "-m", "tests.fsm.fork_worker", url, *admin]

    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)  # noqa: S603

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["seq"] == 1  # the parent's fire worked at the first try
    if database != "sqlite":
        assert len(report["before"]) >= KEPT
        assert report["after_exit"] == report["before"]
        assert set(report["before"]) <= set(report["after_fire"])
