"""Writes that ride along with a step (``Engine.fire(..., along=...)``) on SQLite and PostgreSQL:
they commit with the step, only when it is applied, and failing they take the step with them."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Connection, text

from fsm import (
    Actor,
    ConfigurationError,
    Engine,
    IdempotencyKeyReused,
    ManualClock,
    MemoryStore,
    SqlStore,
    StorageError,
    TransitionNotAllowed,
)
from fsm.flows import EVENT_TYPES, FLOWS
from tests.fsm.test_engine import TO_STATUS_CHECK, drive, start_ovo


@pytest.fixture
def noted(store: SqlStore, clock: ManualClock) -> Engine:
    """An engine writing events, on a store with a caller's own table (``along_note``)."""
    with store.transaction() as conn:
        conn.execute(text("CREATE TABLE along_note (note VARCHAR(64), seen_state VARCHAR(64))"))
    return Engine(store, flows=FLOWS, clock=clock, event_types=EVENT_TYPES)


def note(name: str, instance_id: str) -> tuple[list[str], Callable[[Connection], None]]:
    """A write that notes ``name`` and the instance's state as its own transaction sees it;
    and the list of the names it has been run with."""
    runs: list[str] = []

    def write(conn: Connection) -> None:
        runs.append(name)
        state = conn.execute(
            text("SELECT state FROM flow_instance WHERE id = :id"), {"id": instance_id}
        ).scalar_one()
        conn.execute(text("INSERT INTO along_note VALUES (:n, :s)"), {"n": name, "s": state})

    return runs, write


def notes(store: SqlStore) -> list[tuple[str, str]]:
    with store.connection() as conn:
        rows = conn.execute(text("SELECT note, seen_state FROM along_note ORDER BY note"))
        return [(row[0], row[1]) for row in rows]


def outbox_size(store: SqlStore) -> int:
    with store.connection() as conn:
        return int(conn.execute(text("SELECT count(*) FROM outbox_event")).scalar_one())


def test_writes_ride_along_in_the_steps_own_transaction(noted: Engine, store: SqlStore) -> None:
    pid = start_ovo(noted)
    runs, write = note("sent", pid)
    noted.fire(pid, "send_registration", actor=Actor.MERCHANT, idempotency_key="k1", along=write)
    assert runs == ["sent"]
    # The write saw the step it rides with, uncommitted to anyone else: one transaction.
    assert notes(store) == [("sent", "registration_sent")]


def test_a_repeated_refused_or_reused_step_runs_nothing_along(
    noted: Engine, store: SqlStore
) -> None:
    pid = start_ovo(noted)
    noted.fire(pid, "send_registration", actor=Actor.MERCHANT, idempotency_key="k1")
    runs, write = note("again", pid)
    repeated = noted.fire(
        pid, "send_registration", actor=Actor.MERCHANT, idempotency_key="k1", along=write
    )
    assert repeated.duplicate
    with pytest.raises(TransitionNotAllowed):  # not allowed in registration_sent
        noted.fire(pid, "request_payment", actor=Actor.MERCHANT, idempotency_key="k2", along=write)
    # Allowed by the flow, so applied before its key is looked up: the log refuses the key,
    # the unit rolls back, and the second unit answers from the log without running it.
    reply = {"tx_id": "TX1", "reference_no": "ORD-1", "resultCd": "0000"}
    with pytest.raises(IdempotencyKeyReused):
        noted.fire(
            pid,
            "accept_registration",
            actor=Actor.PROVIDER_RESPONSE,
            idempotency_key="k1",
            payload=reply,
            along=write,
        )
    assert runs == []
    assert notes(store) == []


def test_a_failing_write_takes_the_step_and_its_event_with_it(
    noted: Engine, store: SqlStore
) -> None:
    pid = start_ovo(noted)
    drive(noted, pid, TO_STATUS_CHECK)
    before, events = noted.get(pid), outbox_size(store)

    def broken(conn: Connection) -> None:
        conn.execute(text("INSERT INTO along_note VALUES ('paid', 'x')"))
        conn.execute(text("INSERT INTO no_such_table VALUES (1)"))

    with pytest.raises(StorageError):
        noted.fire(
            pid, "confirm_payment", actor=Actor.STATUS_INQUIRY, idempotency_key="p", along=broken
        )
    assert noted.get(pid) == before
    assert [step.event for step in noted.history(pid)][-1] == "check_status"
    assert (outbox_size(store), notes(store)) == (events, [])

    # Sent again with a write that works, the step applies, with its event and the write.
    runs, write = note("paid", pid)
    noted.fire(pid, "confirm_payment", actor=Actor.STATUS_INQUIRY, idempotency_key="p", along=write)
    assert (noted.get(pid).state, runs) == ("paid", ["paid"])
    assert (outbox_size(store), notes(store)) == (events + 1, [("paid", "paid")])


def test_a_write_that_ends_the_steps_transaction_is_refused(noted: Engine, store: SqlStore) -> None:
    pid = start_ovo(noted)

    def commits(conn: Connection) -> None:
        conn.execute(text("INSERT INTO along_note VALUES ('early', 'x')"))
        conn.commit()

    with pytest.raises(ConfigurationError, match="must not commit, roll back or close"):
        noted.fire(
            pid, "send_registration", actor=Actor.MERCHANT, idempotency_key="r", along=commits
        )

    # The engine stays usable: another payment's step and its write commit together.
    other = start_ovo(noted, "pay-2")
    runs, write = note("later", other)
    noted.fire(other, "send_registration", actor=Actor.MERCHANT, idempotency_key="r", along=write)
    assert runs == ["later"]
    assert ("later", "registration_sent") in notes(store)


def test_a_memory_store_refuses_writes_along_and_applies_nothing(clock: ManualClock) -> None:
    engine = Engine(MemoryStore(), flows=FLOWS, clock=clock)
    pid = start_ovo(engine)
    before = engine.get(pid)
    with pytest.raises(ConfigurationError, match="need a SqlStore"):
        engine.fire(
            pid,
            "send_registration",
            actor=Actor.MERCHANT,
            idempotency_key="k1",
            along=lambda conn: None,
        )
    assert (engine.get(pid), engine.history(pid)) == (before, [])
