"""A PostgreSQL session the server ends costs only a reconnect, without a ping per checkout.

Each test gives its store's connections an ``application_name`` of their own, so the server can
end exactly those sessions (as a restart ends them all) while other test runs share the server.
A restart ends every session at once: the pool's idle connections die with the one in use.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fsm import Engine, ManualClock, SqlStore
from fsm.errors import StorageUnavailable
from fsm.flows import FLOWS
from tests.conftest import postgres_url_or_skip
from tests.fsm.conftest import T0
from tests.fsm.sessions import Sessions, keep_several

pytestmark = pytest.mark.postgres


@pytest.fixture(params=[False, True], ids=["socket-check", "pre-ping"])
def named_store(request: pytest.FixtureRequest, postgres_schema_url: str) -> Iterator[SqlStore]:
    """A store on a fresh schema whose sessions carry a name of their own."""
    name = f"ewallet-fsm-test-{uuid.uuid4().hex[:12]}"
    store = SqlStore(f"{postgres_schema_url}&application_name={name}", pre_ping=request.param)
    store.create_schema()
    yield store
    store.dispose()


@pytest.fixture
def sessions(named_store: SqlStore) -> Iterator[Sessions]:
    name = named_store.engine.url.query["application_name"]
    watched = Sessions(name, postgres_url_or_skip())  # type: ignore[arg-type]
    yield watched
    watched.close()


def test_units_and_reads_reconnect_after_the_server_ended_the_session(
    named_store: SqlStore, sessions: Sessions
) -> None:
    engine = Engine(named_store, flows=FLOWS, clock=ManualClock(T0))
    pid = engine.start("ewallet_payment", wallet="ovo", amount=1000).id
    sessions.end_all()

    result = engine.fire(pid, "send_registration", actor="merchant", idempotency_key="reg")

    assert result.record.seq == 1
    sessions.end_all()
    assert named_store.get(pid).state == "registration_sent"  # a read through SQLAlchemy
    sessions.end_all()
    assert [record.event for record in named_store.history(pid)] == ["send_registration"]


def test_a_unit_whose_connection_died_before_its_first_statement_reconnects(
    named_store: SqlStore, sessions: Sessions
) -> None:
    engine = Engine(named_store, flows=FLOWS, clock=ManualClock(T0))
    pid = engine.start("ewallet_payment", wallet="ovo", amount=1000).id
    with named_store.unit() as unit:
        sessions.end_all()  # after the checkout's check: only the first statement can tell
        assert unit.load(pid).version == 0
    assert sessions.count() == 1


def test_a_connection_lost_after_a_write_fails_the_unit_and_stores_nothing(
    named_store: SqlStore, sessions: Sessions
) -> None:
    engine = Engine(named_store, flows=FLOWS, clock=ManualClock(T0))
    pid = engine.start("ewallet_payment", wallet="ovo", amount=1000).id

    def lose_the_session_midway() -> None:
        with named_store.unit() as unit:
            unit.load(pid)  # the unit's transaction has begun on the server
            sessions.end_all()  # running it again elsewhere could apply something twice
            unit.load(pid)

    with pytest.raises(StorageUnavailable) as lost:
        lose_the_session_midway()
    assert lost.value.retryable
    assert named_store.get(pid).version == 0
    assert engine.fire(pid, "send_registration", actor="merchant", idempotency_key="r").applied


def test_units_keep_one_session_between_them_and_dispose_ends_it(
    named_store: SqlStore, sessions: Sessions
) -> None:
    engine = Engine(named_store, flows=FLOWS, clock=ManualClock(T0))
    pid = engine.start("ewallet_payment", wallet="ovo", amount=1000).id
    engine.fire(pid, "send_registration", actor="merchant", idempotency_key="reg")
    for _ in range(10):
        assert len(named_store.history(pid)) == 1  # a unit each
    assert sessions.count() <= 2  # the pool's, for the start, and the one the units share

    named_store.dispose()

    assert sessions.wait_for(0)


KEPT = 4
"""Units run at once before the server ends the sessions, so that many connections are kept."""


def test_every_kept_connection_is_replaced_when_the_server_ended_them_all(
    named_store: SqlStore, sessions: Sessions
) -> None:
    engine = Engine(named_store, flows=FLOWS, clock=ManualClock(T0))
    pid = engine.start("ewallet_payment", wallet="ovo", amount=1000).id
    uses: list[Callable[[], Any]] = [
        lambda: engine.fire(pid, "send_registration", actor="merchant", idempotency_key="reg"),
        lambda: named_store.history(pid),
        lambda: named_store.replay_rows([pid], with_time=True),
        lambda: engine.get(pid),
        lambda: engine.fire(pid, "send_registration", actor="merchant", idempotency_key="reg"),
    ]
    for use in uses:
        keep_several(named_store, KEPT)
        assert sessions.count() >= KEPT
        sessions.end_all()
        use()  # on the first try: no dead connection is handed out

    assert [record.seq for record in named_store.history(pid)] == [1]


def test_a_unit_reconnecting_does_not_take_another_dead_kept_connection(
    named_store: SqlStore, sessions: Sessions
) -> None:
    engine = Engine(named_store, flows=FLOWS, clock=ManualClock(T0))
    pid = engine.start("ewallet_payment", wallet="ovo", amount=1000).id
    keep_several(named_store, KEPT)
    with named_store.unit() as unit:
        sessions.end_all()  # the unit's connection and every idle one are gone
        assert unit.load(pid).version == 0
    assert engine.fire(pid, "send_registration", actor="merchant", idempotency_key="r").applied
