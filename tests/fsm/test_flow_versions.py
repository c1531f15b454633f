"""Flow versions: v2 of the e-wallet payment ships beside v1 (tests/flow_versions.py).

Old payments keep replaying consistent under v1, new ones run v2, and in-flight v1 payments move
to v2 only through a recorded migration step that replay accepts; on every store.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import text

from fsm import (
    ConfigurationError,
    Engine,
    FlowCatalog,
    FlowDefinitionError,
    FlowMigration,
    FlowMigrationError,
    Instance,
    InvalidInstanceData,
    ManualClock,
    SqlStore,
    TransitionNotAllowed,
    UnknownFlowVersion,
    UnknownMigration,
    Verdict,
    replay,
    replay_instance,
    verify_stored,
)
from fsm.flows import EWALLET_PAYMENT
from fsm.render.path_dot import path_to_dot
from fsm.store.schema import alembic_config
from tests.conftest import AnyStore
from tests.flow_versions import (
    CATALOG,
    CHECKOUT_WINDOW_V2,
    EWALLET_PAYMENT_V2,
    FIRST,
    FIRST_VERSIONS,
    REMINDED,
    TO_V2,
)

LINEAGE = CATALOG.lineage("ewallet_payment")
TO_PAID = [
    ("send_registration", "merchant", {}),
    ("accept_registration", "provider_response", {"tx_id": "TX1", "reference_no": "R1"}),
    ("check_status", "merchant", {}),
    ("confirm_payment", "status_inquiry", {}),
]


@pytest.fixture
def store(any_store: AnyStore) -> AnyStore:
    return any_store


def fire_all(engine: Engine, pid: str, steps: list[tuple[str, str, dict[str, str]]]) -> None:
    for event, actor, payload in steps:
        engine.clock.advance(timedelta(seconds=5))  # type: ignore[attr-defined]
        engine.fire(pid, event, actor=actor, idempotency_key=event, payload=payload)


def v1_payments(store: AnyStore, clock: ManualClock) -> tuple[str, str]:
    """A paid payment and one still at checkout, both written before v2 shipped."""
    before = Engine(store, flows=FIRST, clock=clock)
    paid = before.start("ewallet_payment", wallet="ovo", amount=10000).id
    fire_all(before, paid, TO_PAID)
    waiting = before.start("ewallet_payment", wallet="dana", amount=20000).id
    return paid, waiting


def verdicts(engine: Engine, *pids: str) -> list[tuple[Verdict, tuple[int, ...]]]:
    results = []
    for pid in pids:
        result = replay_instance(LINEAGE, engine.get(pid), engine.history(pid))
        results.append((result.verdict, result.versions))
    return results


def test_old_payments_replay_consistent_under_v1_after_v2_ships(
    store: AnyStore, clock: ManualClock
) -> None:
    paid, waiting = v1_payments(store, clock)
    after = Engine(store, flows=CATALOG, clock=clock)

    assert verdicts(after, paid, waiting) == [(Verdict.CONSISTENT, (1,)), (Verdict.CONSISTENT, ())]
    bulk = verify_stored(store, LINEAGE, [paid, waiting])
    assert [r.verdict for r in bulk.values()] == [Verdict.CONSISTENT, Verdict.CONSISTENT]
    assert bulk[paid].versions == (1,)
    # the v1 log checked against v2 alone does not fit: v2 is other content
    assert replay(EWALLET_PAYMENT_V2, after.history(paid)).verdict == Verdict.DIVERGED


def test_a_payment_keeps_running_under_the_version_it_started_on(
    store: AnyStore, clock: ManualClock
) -> None:
    _, waiting = v1_payments(store, clock)
    after = Engine(store, flows=CATALOG, clock=clock)

    assert after.flow_of(after.get(waiting)) is EWALLET_PAYMENT
    with pytest.raises(TransitionNotAllowed):  # v2's new event is not v1's
        after.fire(waiting, "remind_customer", actor="merchant", idempotency_key="remind")
    step = after.fire(waiting, "send_registration", actor="merchant", idempotency_key="send")
    assert (step.record.flow_version, step.record.fingerprint) == (1, EWALLET_PAYMENT.fingerprint)
    assert step.instance.flow_version == 1


def test_new_payments_run_the_newest_version(store: AnyStore, clock: ManualClock) -> None:
    engine = Engine(store, flows=CATALOG, clock=clock)
    payment = engine.start("ewallet_payment", wallet="ovo", amount=5000)

    assert payment.flow_version == 2
    assert engine.get(payment.id).flow_version == 2
    assert payment.deadline_at == clock.now() + CHECKOUT_WINDOW_V2
    step = engine.fire(payment.id, "remind_customer", actor="merchant", idempotency_key="r")
    assert (step.state, step.record.flow_version) == (REMINDED, 2)
    assert step.record.fingerprint == EWALLET_PAYMENT_V2.fingerprint
    assert verdicts(engine, payment.id) == [(Verdict.CONSISTENT, (2,))]


def test_migrate_moves_in_flight_v1_payments_as_recorded_operator_steps(
    store: AnyStore, clock: ManualClock
) -> None:
    paid, waiting = v1_payments(store, clock)
    engine = Engine(store, flows=CATALOG, clock=clock)
    registering = engine.start("ewallet_payment", wallet="ovo", amount=1).id  # a v2 payment

    planned = engine.migrate("ewallet_payment", 1, 2, by="on-call", dry_run=True)
    assert sorted((m.instance_id, m.source, m.dest, m.record) for m in planned) == sorted(
        [(paid, "paid", "paid", None), (waiting, "checkout_requested", "checkout_requested", None)]
    )
    assert engine.get(waiting).flow_version == 1  # a dry run writes nothing
    assert engine.history(waiting) == []

    clock.advance(timedelta(minutes=1))
    moved = engine.migrate("ewallet_payment", 1, 2, by="on-call")

    assert sorted(m.instance_id for m in moved) == sorted([paid, waiting])
    assert registering not in {m.instance_id for m in moved}
    step = engine.history(waiting)[-1]
    assert (step.event, step.actor, step.flow_version) == ("migrate_version", "operator", 2)
    assert step.payload == {"migration": TO_V2.name, "by": "on-call"}
    migrated = engine.get(waiting)
    assert (migrated.flow_version, migrated.state, migrated.version) == (2, "checkout_requested", 1)
    assert migrated.deadline_at == clock.now() + CHECKOUT_WINDOW_V2  # v2's window from now
    assert verdicts(engine, paid, waiting) == [
        (Verdict.CONSISTENT, (1, 2)),
        (Verdict.CONSISTENT, (1, 2)),
    ]
    bulk = verify_stored(store, LINEAGE, [paid, waiting])
    assert [(r.verdict, r.versions) for r in bulk.values()] == [(Verdict.CONSISTENT, (1, 2))] * 2
    engine.fire(waiting, "remind_customer", actor="merchant", idempotency_key="remind")
    assert verdicts(engine, waiting) == [(Verdict.CONSISTENT, (1, 2))]
    assert engine.migrate("ewallet_payment", 1, 2, by="on-call") == []  # nothing left to move


def test_a_finished_payment_keeps_its_version(store: AnyStore, clock: ManualClock) -> None:
    before = Engine(store, flows=FIRST, clock=clock)
    pid = before.start("ewallet_payment", wallet="ovo", amount=10000).id
    fire_all(before, pid, [("abandon_checkout", "merchant", {})])
    engine = Engine(store, flows=CATALOG, clock=clock)

    assert engine.migrate("ewallet_payment", 1, 2, by="on-call") == []
    assert engine.get(pid).flow_version == 1


def test_replay_accepts_a_version_change_only_through_a_migration_step(
    store: AnyStore, clock: ManualClock
) -> None:
    paid, _ = v1_payments(store, clock)
    engine = Engine(store, flows=CATALOG, clock=clock)
    history = engine.history(paid)
    v2_fingerprint = EWALLET_PAYMENT_V2.fingerprint
    silent = [
        *history[:2],
        *(replace(r, flow_version=2, fingerprint=v2_fingerprint) for r in history[2:]),
    ]

    result = replay(LINEAGE, silent)

    assert result.verdict == Verdict.DIVERGED
    assert result.divergence is not None
    assert result.divergence.reason == (
        "step 3 moves from version 1 to 2 by 'check_status' from merchant,"
        " not an operator's 'migrate_version'"
    )
    unknown = replay(LINEAGE, [replace(history[0], flow_version=3)])
    assert unknown.divergence is not None
    assert "version 3, which flow ewallet_payment does not have" in unknown.divergence.reason


def test_a_migration_step_must_follow_the_declared_map(store: AnyStore, clock: ManualClock) -> None:
    _, waiting = v1_payments(store, clock)
    engine = Engine(store, flows=CATALOG, clock=clock)
    engine.migrate("ewallet_payment", 1, 2, by="on-call")
    step = engine.history(waiting)[0]

    result = replay(LINEAGE, [replace(step, dest=REMINDED)])

    assert result.divergence is not None
    assert "ewallet_payment:v1-v2 takes 'checkout_requested' to 'checkout_requested'" in (
        result.divergence.reason
    )


def test_the_row_must_be_pinned_where_the_log_leads(store: AnyStore, clock: ManualClock) -> None:
    paid, _ = v1_payments(store, clock)
    engine = Engine(store, flows=CATALOG, clock=clock)
    row: Instance = replace(engine.get(paid), flow_version=2)

    result = replay_instance(LINEAGE, row, engine.history(paid))

    assert result.divergence is not None
    assert result.divergence.reason == "stored row is pinned to flow version 2, the log to 1"


def test_migrate_refuses_what_is_not_declared(store: AnyStore, clock: ManualClock) -> None:
    engine = Engine(store, flows=CATALOG, clock=clock)
    with pytest.raises(UnknownMigration, match="no migration from version 2 to 3"):
        engine.migrate("ewallet_payment", 2, 3, by="on-call")
    with pytest.raises(UnknownMigration):
        Engine(store, flows=FIRST, clock=clock).migrate("ewallet_payment", 1, 2, by="x")
    with pytest.raises(InvalidInstanceData):
        engine.migrate("ewallet_payment", 1, 2, by="  ")
    with pytest.raises(UnknownFlowVersion, match="has no version 7; its versions: 1, 2"):
        engine.flow("ewallet_payment", 7)
    assert engine.flow("ewallet_payment", 1) is EWALLET_PAYMENT
    assert engine.flow("ewallet_payment") is EWALLET_PAYMENT_V2


def test_a_migration_is_validated_when_the_catalog_is_built() -> None:
    incomplete = FlowMigration("ewallet_payment", 1, {"checkout_requested": "checkout_requested"})
    with pytest.raises(FlowMigrationError, match="state 'paid' of v1 is not mapped"):
        FlowCatalog((*FIRST_VERSIONS, EWALLET_PAYMENT_V2), (incomplete,))
    states = dict(TO_V2.states)
    bad = FlowMigration(
        "ewallet_payment",
        1,
        {**states, "paid": "checkout_requested", "needs_review": "expired", "registered": "gone"},
    )
    with pytest.raises(FlowMigrationError) as caught:
        FlowCatalog((*FIRST_VERSIONS, EWALLET_PAYMENT_V2), (bad,))
    assert set(caught.value.problems) == {
        "'paid' goes to 'checkout_requested': a settled instance keeps its outcome (succeeded),"
        " not start",
        "'needs_review' goes to 'expired': a migration may not settle a payment",
        "'registered' goes to 'gone', which v2 does not have",
    }
    with pytest.raises(UnknownFlowVersion):
        FlowCatalog(FIRST_VERSIONS, (TO_V2,))
    with pytest.raises(FlowDefinitionError, match="version 1 is given twice"):
        FlowCatalog((*FIRST_VERSIONS, EWALLET_PAYMENT))
    with pytest.raises(FlowDefinitionError, match="version 0 is not a whole number"):
        replace(EWALLET_PAYMENT, version=0)


def test_the_version_is_not_part_of_the_fingerprint() -> None:
    assert replace(EWALLET_PAYMENT, version=5).fingerprint == EWALLET_PAYMENT.fingerprint
    assert EWALLET_PAYMENT_V2.fingerprint != EWALLET_PAYMENT.fingerprint


def test_the_schema_refuses_a_downgrade_that_would_lose_versions(
    store: AnyStore, clock: ManualClock
) -> None:
    if not isinstance(store, SqlStore):
        pytest.skip("a schema belongs to the SQL stores")
    v1_payments(store, clock)
    Engine(store, flows=CATALOG, clock=clock).migrate("ewallet_payment", 1, 2, by="on-call")
    with store.engine.connect() as conn:
        with pytest.raises(ConfigurationError, match="rows of a flow version after 1"):
            command.downgrade(alembic_config(conn), "0006")
        conn.rollback()
        assert conn.execute(text("select max(flow_version) from flow_instance")).scalar() == 2


def test_the_path_diagram_checks_each_step_under_its_own_version(
    store: AnyStore, clock: ManualClock
) -> None:
    paid, _ = v1_payments(store, clock)
    engine = Engine(store, flows=CATALOG, clock=clock)
    engine.migrate("ewallet_payment", 1, 2, by="on-call")
    instance, history = engine.get(paid), engine.history(paid)

    dot = path_to_dot(LINEAGE, instance, history)
    against_v2_only = path_to_dot(EWALLET_PAYMENT_V2, instance, history)

    assert "(not in this definition)" not in dot
    assert "steps under earlier versions: v1" in dot
    assert "#5 migrate_version" in dot
    assert "(not in this definition)" in against_v2_only


def test_two_operators_migrating_at_once_move_each_payment_once(
    store: AnyStore, clock: ManualClock
) -> None:
    before = Engine(store, flows=FIRST, clock=clock)
    pids = [before.start("ewallet_payment", wallet="ovo", amount=n + 1).id for n in range(6)]
    engine = Engine(store, flows=CATALOG, clock=clock)
    barrier = threading.Barrier(2)
    moved: list[list[str]] = []

    def migrate() -> None:
        barrier.wait(timeout=10)
        done = engine.migrate("ewallet_payment", 1, 2, by="on-call")
        moved.append([m.instance_id for m in done])

    threads = [threading.Thread(target=migrate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(pid for run in moved for pid in run) == sorted(pids)  # each once, in all
    for pid in pids:
        assert [r.event for r in engine.history(pid)] == ["migrate_version"]
        assert engine.get(pid).flow_version == 2
