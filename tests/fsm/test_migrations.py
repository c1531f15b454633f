"""Schema evolution on SQLite and PostgreSQL: the Alembic migrations and create_schema."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, func, inspect, select, text
from sqlmodel import SQLModel

from adapters.inbound.journal import InboundJournal
from fsm import (
    Actor,
    ChainStatus,
    Engine,
    ManualClock,
    SqlStore,
    TransitionNotAllowed,
    TransitionRecord,
    verify_chains,
)
from fsm.errors import ConfigurationError
from fsm.replay import Verdict, replay_instance
from fsm.store.schema import FIRST_REVISION, HEAD_REVISION, VERSION_TABLE, alembic_config
from tests.conftest import SCHEMA_TABLES as TABLES
from tests.flow_versions import FIRST as FLOWS
from tests.fsm.conftest import T0

RELEASED_EWALLET_FINGERPRINT = "sha256:1c7f6c76c11df6c4"
"""ewallet_payment's fingerprint as the release at revision 0005 logged it."""
REVISIONS = [
    HEAD_REVISION,
    "0010",
    "0009",
    "0008",
    "0007",
    "0006",
    "0005",
    "0004",
    "0003",
    "0002",
    FIRST_REVISION,
]
STEP = timedelta(minutes=1)
FLOW = FLOWS["ewallet_payment"]
"""Version 1: the releases before flow versions wrote no other."""
FIRST_TABLES = {"flow_instance", "transition_log", "rejected_event"}
PREVIOUS_TABLES = FIRST_TABLES | {"inbound_attempt"}
ALL_TABLES = PREVIOUS_TABLES | {"call_intent", "outbox_event", "status_work"}
BEFORE: list[tuple[str, Actor, dict[str, Any] | None]] = [
    ("send_registration", Actor.MERCHANT, None),
    ("accept_registration", Actor.PROVIDER_RESPONSE, {"tx_id": "TX1", "reference_no": "ORD-1"}),
    ("request_payment", Actor.MERCHANT, None),
]
AFTER: list[tuple[str, Actor, dict[str, Any] | None]] = [
    ("push_to_app", Actor.PROVIDER_RESPONSE, None),
    ("check_status", Actor.TIMER, None),
    ("confirm_payment", Actor.STATUS_INQUIRY, None),
]


@pytest.fixture
def bare(db_url: str) -> Iterator[SqlStore]:
    """A store on an empty database whose schema the test builds itself."""
    sql_store = SqlStore(db_url)
    yield sql_store
    sql_store.dispose()


def model_metadata() -> MetaData:
    metadata = MetaData()
    for table in TABLES:
        table.to_metadata(metadata)
    return metadata


def schema_differences(store: SqlStore) -> list[Any]:
    with store.engine.connect() as conn:
        return list(
            compare_metadata(
                MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}),
                model_metadata(),
            )
        )


def table_names(store: SqlStore) -> set[str]:
    return set(inspect(store.engine).get_table_names())


def migrate(store: SqlStore, action: str, revision: str) -> None:
    """Run ``alembic upgrade|downgrade|stamp revision`` on the store's database."""
    with store.engine.begin() as conn:
        getattr(command, action)(alembic_config(conn), revision)


def drive(store: SqlStore, clock: ManualClock, pid: str, steps: list[Any]) -> Engine:
    engine = Engine(store, flows=FLOWS, clock=clock)
    for event, actor, payload in steps:
        clock.advance(STEP)
        engine.fire(pid, event, actor=actor, idempotency_key=event, payload=payload)
    return engine


def started(store: SqlStore) -> tuple[Engine, str, list[TransitionRecord]]:
    """An OVO payment part-way to paid, and its history, written to the store."""
    clock = ManualClock(T0)
    pid = (
        Engine(store, flows=FLOWS, clock=clock)
        .start("ewallet_payment", wallet="ovo", amount=25000)
        .id
    )
    engine = drive(store, clock, pid, BEFORE)
    with pytest.raises(TransitionNotAllowed):  # recorded in rejected_event
        engine.fire(pid, "confirm_order", actor="merchant", idempotency_key="early")
    return engine, pid, engine.history(pid)


def assert_works_at_head(store: SqlStore, pid: str, before: list[TransitionRecord]) -> None:
    """The rows written before the upgrade are intact and the engine carries on from them."""
    assert store.schema_version() == HEAD_REVISION
    assert table_names(store) >= ALL_TABLES
    assert schema_differences(store) == []
    assert store.history(pid) == before
    assert len(store.rejections(pid)) == 1
    engine = drive(store, ManualClock(T0 + 10 * STEP), pid, AFTER)
    instance = engine.get(pid)
    assert instance.state == "paid"
    result = replay_instance(FLOW, instance, engine.history(pid))
    assert (result.verdict, result.applied) == (Verdict.CONSISTENT, len(BEFORE) + len(AFTER))
    inbound = InboundJournal(store)
    inbound.record(received_at=T0, endpoint="notification", outcome="accepted", status_code=200)
    assert [attempt.endpoint for attempt in inbound.latest()] == ["notification"]


def test_the_head_revision_is_the_last_script() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_current_head() == HEAD_REVISION
    assert [rev.revision for rev in script.walk_revisions()] == REVISIONS


def test_upgrading_an_empty_database_builds_the_model_schema(bare: SqlStore) -> None:
    assert bare.schema_version() is None
    bare.create_schema()
    assert bare.schema_version() == HEAD_REVISION
    assert table_names(bare) == ALL_TABLES | {"ewallet_fsm_version"}
    assert schema_differences(bare) == []


def test_the_migrations_run_from_a_url_without_an_ini_file(bare: SqlStore, db_url: str) -> None:
    command.upgrade(alembic_config(url=db_url), "head")
    assert bare.schema_version() == HEAD_REVISION
    assert schema_differences(bare) == []


def test_the_first_revision_is_the_first_schema(bare: SqlStore) -> None:
    migrate(bare, "upgrade", FIRST_REVISION)
    assert bare.schema_version() == FIRST_REVISION
    assert table_names(bare) == FIRST_TABLES | {"ewallet_fsm_version"}
    first = MetaData()
    for table in TABLES[:3]:
        table.to_metadata(first)
    with bare.engine.connect() as conn:
        differences = compare_metadata(
            MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}), first
        )
    # Only what later revisions add to the first tables is missing: columns and an index.
    assert set(map(_described, differences)) == {
        ("add_column", "flow_instance", "claimed_by"),
        ("add_column", "flow_instance", "claimed_until"),
        ("add_column", "flow_instance", "refunded_amount"),
        ("add_column", "flow_instance", "flow_version"),
        ("add_column", "transition_log", "flow_version"),
        ("add_column", "flow_instance", "chain_link"),
        ("add_column", "flow_instance", "chain_seal"),
        ("add_column", "flow_instance", "chain_key"),
        ("add_column", "transition_log", "chain_link"),
        ("add_column", "transition_log", "chain_key"),
        ("add_index", "ux_flow_instance_live_reference"),
        ("add_index", "ix_flow_instance_created"),
        ("add_index", "ix_flow_instance_state"),
    }


def _described(difference: Any) -> tuple[str, ...]:
    """One of compare_metadata's differences as plain names."""
    if difference[0] == "add_index":
        return ("add_index", difference[1].name)
    kind, _, table, column = difference
    return (kind, table, column.name)


@pytest.mark.parametrize("revision", REVISIONS[1:])
def test_a_database_at_an_earlier_revision_upgrades_keeping_its_rows(
    bare: SqlStore, revision: str
) -> None:
    pid, before = at_revision_with_rows(bare, revision)
    bare.create_schema()
    assert_works_at_head(bare, pid, before)


def at_revision_with_rows(store: SqlStore, revision: str) -> tuple[str, list[TransitionRecord]]:
    """The rows :func:`started` writes, in a database at ``revision``.

    Today's engine reads and writes every column of today's instance, so the rows are written
    at the head and the schema then taken down to ``revision``: what is left is what that
    release wrote.
    """
    store.create_schema()
    _, pid, before = started(store)
    migrate(store, "downgrade", revision)
    return pid, before


@pytest.mark.parametrize("revision", REVISIONS[1:])
def test_a_database_created_before_migrations_is_stamped_and_upgraded(
    bare: SqlStore, revision: str
) -> None:
    pid, before = at_revision_with_rows(bare, revision)
    with bare.engine.begin() as conn:  # those releases made the same tables without a version
        conn.execute(text(f"DROP TABLE {VERSION_TABLE}"))
    assert bare.schema_version() is None
    bare.create_schema()
    assert_works_at_head(bare, pid, before)


def test_a_complete_unversioned_database_is_stamped_at_the_head(bare: SqlStore) -> None:
    SQLModel.metadata.create_all(bare.engine, tables=list(TABLES))
    _, pid, before = started(bare)
    bare.create_schema()
    assert_works_at_head(bare, pid, before)


def test_a_partial_unversioned_schema_is_refused(bare: SqlStore) -> None:
    SQLModel.metadata.create_all(bare.engine, tables=list(TABLES[:1]))
    with pytest.raises(ConfigurationError, match="only some of the ewallet-fsm tables"):
        bare.create_schema()
    assert bare.schema_version() is None
    assert table_names(bare) == {"flow_instance"}


def test_create_schema_twice_changes_nothing(store: SqlStore) -> None:
    _, pid, before = started(store)
    store.create_schema()
    store.create_schema()
    with store.engine.connect() as conn:
        versions = conn.execute(text("select version_num from ewallet_fsm_version")).scalars().all()
    assert versions == [HEAD_REVISION]
    assert store.history(pid) == before
    assert schema_differences(store) == []


def as_released(record: TransitionRecord) -> TransitionRecord:
    """``record`` as the release before revision 0006 logged it."""
    actor = {"provider_response": "nicepay_response"}.get(record.actor, record.actor)
    return replace(record, actor=actor, fingerprint=RELEASED_EWALLET_FINGERPRINT)


def logged_before_versions(store: SqlStore, pid: str) -> list[tuple[object, ...]]:
    """The log as a release before revision 0009 reads it: without a flow version column."""
    with store.engine.connect() as conn:
        rows = conn.execute(_OLD_LOG, {"pid": pid})
        return [tuple(row) for row in rows]


_OLD_LOG = text(
    "select seq, event, source, dest, actor, idempotency_key, fingerprint from transition_log"
    " where instance_id = :pid order by seq"
)


def old_columns(records: list[TransitionRecord]) -> list[tuple[object, ...]]:
    return [
        (r.seq, r.event, r.source, r.dest, r.actor, r.idempotency_key, r.fingerprint)
        for r in records
    ]


def test_downgrade_to_the_first_revision_and_back(store: SqlStore) -> None:
    _, pid, before = started(store)
    migrate(store, "downgrade", FIRST_REVISION)
    assert store.schema_version() == FIRST_REVISION
    assert table_names(store) == FIRST_TABLES | {"ewallet_fsm_version"}
    assert logged_before_versions(store, pid) == old_columns([as_released(r) for r in before])
    store.create_schema()
    assert_works_at_head(store, pid, before)


def test_downgrade_to_base_drops_every_table(store: SqlStore) -> None:
    migrate(store, "downgrade", "base")
    assert store.schema_version() is None
    assert table_names(store) <= {"ewallet_fsm_version"}


def test_concurrent_create_schema_calls_all_succeed(db_url: str) -> None:
    stores = [SqlStore(db_url) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def create(sql_store: SqlStore) -> None:
        try:
            barrier.wait(timeout=10)
            sql_store.create_schema()
        except BaseException as error:  # checked below
            errors.append(error)

    threads = [threading.Thread(target=create, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert errors == []
        assert all(s.schema_version() == HEAD_REVISION for s in stores)
        with stores[0].engine.connect() as conn:
            rows = conn.execute(select(func.count()).select_from(text("ewallet_fsm_version")))
            assert rows.scalar_one() == 1
        assert schema_differences(stores[0]) == []
    finally:
        for sql_store in stores:
            sql_store.dispose()


# --- 0006: provider-neutral actors -----------------------------------------------------------


def log_columns(store: SqlStore, pid: str) -> list[tuple[str, str]]:
    with store.engine.connect() as conn:
        query = "select actor, fingerprint from transition_log where instance_id = :pid"
        rows = conn.execute(text(query + " order by seq"), {"pid": pid})
        return [(row.actor, row.fingerprint) for row in rows]


def rejected_actors(store: SqlStore, pid: str) -> list[str]:
    with store.engine.connect() as conn:
        query = text("select actor from rejected_event where instance_id = :pid order by id")
        return list(conn.execute(query, {"pid": pid}).scalars())


def test_a_log_of_the_previous_release_replays_consistent_after_the_upgrade(
    bare: SqlStore,
) -> None:
    pid, before = at_revision_with_rows(bare, "0005")
    with bare.engine.begin() as conn:  # a rejection the previous release recorded
        conn.execute(
            text(
                "update rejected_event set actor = 'nicepay_notification' where instance_id = :pid"
            ),
            {"pid": pid},
        )
    assert logged_before_versions(bare, pid) == old_columns([as_released(r) for r in before])

    bare.create_schema()

    assert bare.schema_version() == HEAD_REVISION
    assert log_columns(bare, pid) == [
        ("merchant", FLOW.fingerprint),
        ("provider_response", FLOW.fingerprint),
        ("merchant", FLOW.fingerprint),
    ]
    assert rejected_actors(bare, pid) == ["provider_notification"]
    assert bare.history(pid) == before
    result = replay_instance(FLOW, bare.get(pid), bare.history(pid))
    assert (result.verdict, result.applied) == (Verdict.CONSISTENT, len(BEFORE))


def test_steps_under_another_definition_keep_their_fingerprint(bare: SqlStore) -> None:
    pid, _ = at_revision_with_rows(bare, "0005")
    with bare.engine.begin() as conn:
        conn.execute(
            text("update transition_log set fingerprint = 'sha256:0000000000000000' where seq = 1")
        )
    bare.create_schema()
    assert [fingerprint for _, fingerprint in log_columns(bare, pid)] == [
        "sha256:0000000000000000",
        FLOW.fingerprint,
        FLOW.fingerprint,
    ]
    result = replay_instance(FLOW, bare.get(pid), bare.history(pid))
    assert result.verdict == Verdict.DIVERGED  # applied under a definition the flow is not


def two_payments_at_0005(store: SqlStore) -> tuple[str, str]:
    """A built-in flow's payment and one the application's own flow logged, at revision 0005."""
    store.create_schema()
    _, own, _ = started(store)
    with store.engine.begin() as conn:  # moved aside before the same order starts again
        conn.execute(
            text("update flow_instance set flow = 'shop_refund' where id = :pid"), {"pid": own}
        )
    _, built_in, _ = started(store)
    migrate(store, "downgrade", "0005")
    return built_in, own


def actors_of(store: SqlStore, pid: str) -> tuple[list[str], list[str]]:
    return [actor for actor, _ in log_columns(store, pid)], rejected_actors(store, pid)


def test_the_upgrade_leaves_the_actors_of_an_application_flow_alone(bare: SqlStore) -> None:
    built_in, own = two_payments_at_0005(bare)
    with bare.engine.begin() as conn:  # names the application's flow declared for itself
        conn.execute(text("update rejected_event set actor = 'nicepay_notification'"))
        conn.execute(
            text(
                "update transition_log set actor = 'nicepay_response'"
                " where instance_id = :pid and actor = 'provider_response'"
            ),
            {"pid": own},
        )

    bare.create_schema()

    assert actors_of(bare, own) == (
        ["merchant", "nicepay_response", "merchant"],
        ["nicepay_notification"],
    )
    assert actors_of(bare, built_in) == (
        ["merchant", "provider_response", "merchant"],
        ["provider_notification"],
    )


def test_the_downgrade_leaves_the_actors_of_an_application_flow_alone(bare: SqlStore) -> None:
    built_in, own = two_payments_at_0005(bare)
    bare.create_schema()
    with bare.engine.begin() as conn:  # names the application's flow declared for itself
        conn.execute(text("update rejected_event set actor = 'provider_notification'"))
        conn.execute(
            text("update transition_log set actor = 'provider_response' where instance_id = :pid"),
            {"pid": own},
        )

    migrate(bare, "downgrade", "0005")

    assert actors_of(bare, own) == (["provider_response"] * 3, ["provider_notification"])
    assert actors_of(bare, built_in) == (
        ["merchant", "nicepay_response", "merchant"],
        ["nicepay_notification"],
    )


# --- 0010: the audit chain -------------------------------------------------------------------


def test_rows_stored_before_the_chain_are_hash_chained_by_the_upgrade(bare: SqlStore) -> None:
    pid, before = at_revision_with_rows(bare, "0006")
    with bare.engine.connect() as conn:
        columns = {column["name"] for column in inspect(conn).get_columns("transition_log")}
    assert "chain_link" not in columns
    bare.create_schema()
    verdict = verify_chains(bare, [pid])[pid]
    assert (verdict.status, verdict.key_ids, verdict.steps) == (
        ChainStatus.INTACT,
        ("sha256",),
        len(before),
    )
    with bare.engine.begin() as conn:
        conn.execute(text("update flow_instance set amount = '1' where id = :pid"), {"pid": pid})
    assert verify_chains(bare, [pid])[pid].status is ChainStatus.TAMPERED
