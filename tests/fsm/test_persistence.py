"""Storage on SQLite and PostgreSQL: times, the append-only log, lookups, CAS and row locks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import exc, insert, text

from fsm import (
    Actor,
    ConcurrentTransition,
    Deadline,
    Engine,
    FlowDefinition,
    Guard,
    GuardContext,
    Instance,
    InvalidInstanceData,
    ManualClock,
    SqlStore,
    StateKind,
    StateSpec,
    TransitionRecord,
    TransitionResult,
)
from fsm.definition import transition
from fsm.flows import FLOWS
from fsm.store.leases import Leases
from fsm.store.tables import TransitionLogRow
from tests.fsm.conftest import T0

WIB = timezone(timedelta(hours=7), "WIB")
MINUTE = timedelta(minutes=1)
FLOW = FLOWS["ewallet_payment"]
REGISTRATION_REPLY = {"tx_id": "TXOVO0001", "reference_no": "ORD-1"}


def make_instance(
    instance_id: str = "pay-1",
    *,
    created_at: datetime = T0,
    deadline_at: datetime | None = None,
    tx_id: str | None = None,
    reference_no: str | None = None,
) -> Instance:
    return Instance(
        id=instance_id,
        flow="ewallet_payment",
        state="checkout_requested",
        version=0,
        wallet="ovo",
        amount="1000",
        currency="IDR",
        reference_no=reference_no,
        tx_id=tx_id,
        mandate=None,
        deadline_at=deadline_at,
        created_at=created_at,
        updated_at=created_at,
    )


def record_for(
    instance: Instance, event_name: str, dest: str, actor: Actor, key: str, at: datetime
) -> TransitionRecord:
    return TransitionRecord(
        instance_id=instance.id,
        seq=instance.version + 1,
        event=event_name,
        source=instance.state,
        dest=dest,
        actor=actor,
        idempotency_key=key,
        payload={},
        occurred_at=at,
        fingerprint=FLOW.fingerprint,
    )


# --- times (what every store does alike: tests/fsm/test_store_contract.py) --------------------


def test_due_refuses_naive_now(store: SqlStore) -> None:
    store.insert_instance(make_instance(deadline_at=T0))
    with pytest.raises(InvalidInstanceData, match="naive"):
        Leases(store).due(datetime(2026, 11, 23, 10, 0))


def test_sqlite_file_holds_utc_wall_time(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'times.sqlite3'}")
    store.create_schema()
    store.insert_instance(make_instance(created_at=datetime(2026, 11, 23, 10, 0, tzinfo=WIB)))
    with store.engine.connect() as conn:
        raw = conn.execute(text("select created_at from flow_instance")).scalar_one()
    store.dispose()
    assert str(raw).startswith("2026-11-23 03:00:00")  # converted, not the WIB wall time


# --- the log ---------------------------------------------------------------------------------

PATH: list[tuple[str, Actor, dict[str, Any] | None]] = [
    ("send_registration", Actor.MERCHANT, None),
    ("accept_registration", Actor.PROVIDER_RESPONSE, REGISTRATION_REPLY),
    ("request_payment", Actor.MERCHANT, None),
    ("push_to_app", Actor.PROVIDER_RESPONSE, None),
    ("check_status", Actor.TIMER, None),
]


def test_log_key_is_unique_per_instance(engine: Engine, store: SqlStore) -> None:
    pid = engine.start("ewallet_payment", wallet="ovo", amount=1000).id
    first = engine.fire(pid, "send_registration", actor="merchant", idempotency_key="reg").record
    copy = replace(first, seq=2, event="fail_registration", dest="registration_failed")
    values = {**vars_of(copy), "actor": str(copy.actor), "payload": "{}"}
    with pytest.raises(exc.IntegrityError), store.engine.begin() as conn:
        conn.execute(insert(TransitionLogRow.__table__), values)  # type: ignore[attr-defined]
    assert store.history(pid) == [first]


def vars_of(record: TransitionRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__slots__}


# --- lookups ---------------------------------------------------------------------------------


def test_due_lists_passed_deadlines_earliest_first(store: SqlStore) -> None:
    deadlines = {"late": T0 + 10 * MINUTE, "soon": T0 + MINUTE, "mid": T0 + 5 * MINUTE}
    for name, deadline in deadlines.items():
        store.insert_instance(make_instance(name, deadline_at=deadline))
    store.insert_instance(make_instance("final", deadline_at=None))

    def ids(now: datetime, **kwargs: Any) -> list[str]:
        return [instance.id for instance in Leases(store).due(now, **kwargs)]

    assert ids(T0) == []
    assert ids(T0 + 5 * MINUTE) == ["soon", "mid"]  # a deadline equal to now is due
    assert ids((T0 + 5 * MINUTE).astimezone(WIB)) == ["soon", "mid"]  # same instant
    assert ids(T0 + 5 * MINUTE - timedelta(microseconds=1)) == ["soon"]
    assert ids(T0 + timedelta(days=1)) == ["soon", "mid", "late"]
    assert ids(T0 + timedelta(days=1), limit=2) == ["soon", "mid"]


def test_engine_deadline_becomes_due_on_time(engine: Engine, store: SqlStore) -> None:
    pid = engine.start("ewallet_payment", wallet="ovo", amount=1000).id
    for index, (event_name, actor, payload) in enumerate(PATH[:4]):
        engine.fire(pid, event_name, actor=actor, idempotency_key=f"k{index}", payload=payload)
    assert engine.get(pid).state == "awaiting_approval"  # OVO: 55 s to approve
    assert pid not in [i.id for i in Leases(store).due(T0 + timedelta(seconds=54))]
    assert pid in [i.id for i in Leases(store).due(T0 + timedelta(seconds=55))]


# --- compare-and-set and row locks -----------------------------------------------------------


def interleaving_flow(meanwhile: Callable[[], None]) -> FlowDefinition:
    """A flow whose 'take' guard lets another writer move the instance between read and write."""

    def check(_ctx: GuardContext) -> bool:
        meanwhile()
        return True

    minute = Deadline(MINUTE, "close")
    return FlowDefinition(
        name="handoff",
        states=(
            StateSpec("open", StateKind.START, deadline=minute),
            StateSpec("taken", StateKind.IN_PROGRESS, deadline=minute),
            StateSpec("closed", StateKind.FAILED, final=True),
        ),
        initial="open",
        transitions=(
            transition("take", "open", "taken", Actor.MERCHANT, guard=Guard("race", check)),
            transition("grab", "open", "taken", Actor.OPERATOR),
            transition("close", ("open", "taken"), "closed", Actor.TIMER),
        ),
        actors=(Actor.MERCHANT, Actor.OPERATOR, Actor.TIMER),
    )


def test_engine_write_after_a_rival_step_raises_concurrent_transition(
    tmp_path: Path, clock: ManualClock
) -> None:
    # SQLite takes no lock on read, so a rival can commit between our load and our write
    url = f"sqlite:///{tmp_path / 'race.sqlite3'}"
    store, rival_store = SqlStore(url), SqlStore(url)
    store.create_schema()
    rivals: list[TransitionResult] = []

    def rival_grabs() -> None:
        if not rivals:
            rival = Engine(rival_store, flows={"handoff": flow}, clock=clock)
            rivals.append(rival.fire("h-1", "grab", actor="operator", idempotency_key="grab"))

    flow = interleaving_flow(rival_grabs)
    engine = Engine(store, flows={"handoff": flow}, clock=clock)
    engine.start("handoff", instance_id="h-1")
    try:
        with pytest.raises(ConcurrentTransition) as info:
            engine.fire("h-1", "take", actor="merchant", idempotency_key="take")
        assert (info.value.state, info.value.event, info.value.expected_version) == (
            "open",
            "take",
            0,
        )
        assert info.value.retryable
        assert engine.history("h-1") == [rivals[0].record]  # only the rival's step
        assert engine.rejections("h-1") == []
        assert (engine.get("h-1").state, engine.get("h-1").version) == ("taken", 1)
    finally:
        store.dispose()
        rival_store.dispose()


def test_a_loaded_row_is_held_until_the_unit_ends_only_on_postgres(
    store: SqlStore, other_store: SqlStore, engine: Engine, clock: ManualClock
) -> None:
    pid = engine.start("ewallet_payment", wallet="ovo", amount=1000).id
    with store.unit() as unit:
        unit.load(pid)
        if store.dialect == "postgresql":  # SELECT ... FOR UPDATE: the row is ours until commit
            with (
                pytest.raises(exc.OperationalError, match="lock"),
                other_store.engine.begin() as conn,
            ):
                conn.execute(
                    text("select id from flow_instance where id = :id for update nowait"),
                    {"id": pid},
                )
        else:  # SQLite locks nothing on read: a rival may move the row meanwhile
            rival = Engine(other_store, flows=FLOWS, clock=clock)
            rival.fire(pid, "send_registration", actor="merchant", idempotency_key="reg")
    assert other_store.get(pid).version == (0 if store.dialect == "postgresql" else 1)


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.postgres
def test_postgres_fire_waits_for_the_row_lock(postgres_schema_url: str) -> None:
    holder, waiter = SqlStore(postgres_schema_url), SqlStore(postgres_schema_url)
    holder.create_schema()
    clock = ManualClock(T0)
    pid = (
        Engine(holder, flows=FLOWS, clock=clock)
        .start("ewallet_payment", wallet="ovo", amount=1000)
        .id
    )
    outcome: list[object] = []

    def accept() -> None:
        try:
            outcome.append(
                Engine(waiter, flows=FLOWS, clock=clock).fire(
                    pid,
                    "accept_registration",
                    actor="provider_response",
                    idempotency_key="accept",
                    payload=REGISTRATION_REPLY,
                )
            )
        except Exception as error:  # checked below
            outcome.append(error)

    def blocked_by(backend: int) -> bool:
        query = text("select count(*) from pg_stat_activity where :b = any(pg_blocking_pids(pid))")
        with holder.engine.connect() as conn:
            return bool(conn.execute(query, {"b": backend}).scalar_one())

    thread = threading.Thread(target=accept)
    try:
        with holder.unit() as unit:
            loaded = unit.load(pid)  # takes the row lock until the unit commits
            backend = unit._cursor.execute("select pg_backend_pid()").fetchone()[0]
            thread.start()
            assert wait_until(lambda: blocked_by(backend)), "the second fire did not wait"
            assert outcome == []
            step = record_for(
                loaded, "send_registration", "registration_sent", Actor.MERCHANT, "reg", T0
            )
            unit.apply(step, expected_version=0, deadline_at=None, bound={})
        thread.join(timeout=10)
        assert not thread.is_alive()
        # it ran after the commit, so it saw registration_sent and could accept
        (result,) = outcome
        assert isinstance(result, TransitionResult), result
        assert (result.record.seq, result.record.source) == (2, "registration_sent")
        assert holder.get(pid).tx_id == REGISTRATION_REPLY["tx_id"]
    finally:
        thread.join(timeout=10)
        holder.dispose()
        waiter.dispose()
