"""Races across processes: workers on one database deliver the same events at the same time.

Four worker processes (``spawn``, each with its own store and engine) fire the same shuffled
script over many payments: every notification, response and inquiry answer under a fixed
idempotency key, so each is delivered four times, and for half the payments two competing
inquiry answers (paid against expired). Per logical event exactly one transition is applied,
every repeat is recorded as a duplicate, the losing answer is recorded as stale, nothing is lost,
no worker hangs, and every payment replays consistently. First on a SQLite file in WAL mode, then
on PostgreSQL.

Two more runs on SQLite show what a caller sees when the bounded retry gives up: with a single
attempt, and with a lock held longer than the busy timeout. Either way it is ConcurrentTransition,
soon, and nothing is recorded for that call.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import text

from fsm import (
    DEFAULT_RETRY,
    Engine,
    RejectReason,
    RetryPolicy,
    SqlStore,
    Verdict,
    replay_instance,
)
from fsm.flows import FLOWS
from tests.fsm.race_worker import (
    COMPETING,
    FLOW,
    WALLETS,
    Assignment,
    Firing,
    Outcome,
    Report,
    competing,
    payment_id,
    payment_path,
    run_worker,
    scripts,
)

WORKERS = 4
PAYMENTS = 40
SEED = 20261123
ROUND = 2
"""Workers meet at a barrier before every ROUND firings: aligned on one event, then drifting."""
HANG_LIMIT = 45.0
"""Seconds the whole race may take; a worker still running then is stuck (a deadlock)."""

logger = logging.getLogger(__name__)
DEFINITION = FLOWS[FLOW]
RECORDED_AS = {"duplicate": RejectReason.DUPLICATE, "stale": RejectReason.STALE}
"""Outcomes that leave a rejection row, and the reason it carries."""


def start_payments(url: str, count: int = PAYMENTS) -> SqlStore:
    """A store on ``url`` with its schema and ``count`` payments in their initial state."""
    store = SqlStore(url)
    store.create_schema()
    engine = Engine(store, flows=FLOWS)
    for index in range(count):
        engine.start(
            FLOW,
            instance_id=payment_id(index),
            wallet=WALLETS[index % len(WALLETS)],
            amount=10_000 + index,
            reference_no=f"ORD-{index:04d}",
        )
    return store


def the_race(url: str, policy: RetryPolicy = DEFAULT_RETRY) -> list[Assignment]:
    """Every worker on the same shuffled script over every payment, in rounds of ROUND."""
    return [
        Assignment(worker, url, script, policy, ROUND)
        for worker, script in enumerate(scripts(PAYMENTS, WORKERS, SEED))
    ]


def race(assignments: list[Assignment]) -> list[Report]:
    """Run one spawned process per assignment, released together; their reports, in order."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(assignments))
    reports: multiprocessing.queues.Queue[Report] = context.Queue()
    processes = [
        context.Process(
            target=run_worker, args=(job, barrier, reports), name=f"race-worker-{job.worker}"
        )
        for job in assignments
    ]
    for process in processes:
        process.start()
    received: list[Report] = []
    try:
        deadline = time.monotonic() + HANG_LIMIT
        while len(received) < len(processes):
            try:
                received.append(reports.get(timeout=max(deadline - time.monotonic(), 0.01)))
            except queue.Empty:
                stuck = [p.name for p in processes if p.is_alive()]
                pytest.fail(f"no report after {HANG_LIMIT} s: deadlock or hang in {stuck}")
        for process in processes:
            process.join(timeout=10)
        assert [p.exitcode for p in processes] == [0] * len(processes)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
        reports.close()
    crashes = [report.crash for report in received if report.crash]
    assert not crashes, crashes[0]
    return sorted(received, key=lambda report: report.worker)


def check_race(store: SqlStore, reports: list[Report]) -> None:
    """Everything the race must leave behind, payment by payment and key by key."""
    outcomes = [outcome for report in reports for outcome in report.outcomes]
    assert [len(report.outcomes) for report in reports] == [
        len(script) for script in scripts(PAYMENTS, WORKERS, SEED)
    ]
    errors = [outcome for outcome in outcomes if outcome.kind.startswith("error")]
    assert not errors, errors[:5]
    by_key: dict[tuple[str, str], Counter[str]] = {}
    for outcome in outcomes:
        by_key.setdefault((outcome.instance_id, outcome.key), Counter())[outcome.kind] += 1

    log_rows = 0
    for index in range(PAYMENTS):
        path = payment_path(index)
        history = store.history(payment_id(index))
        log_rows += len(history)
        check_log(index, path, [record.idempotency_key for record in history])
        for firing in path:
            logged = firing.key in {record.idempotency_key for record in history}
            check_key(store, firing, by_key[firing.instance_id, firing.key], logged=logged)
        stored = store.get(payment_id(index))
        assert stored.version == len(history)
        assert stored.tx_id == f"TX{index:08d}"  # bound by a step: no lost column update
        assert replay_instance(DEFINITION, stored, history).verdict == Verdict.CONSISTENT
        settlements = [r for r in history if DEFINITION.state(r.dest).settlement]
        assert len(settlements) == 1, [(r.seq, r.event) for r in history]
        assert stored.state == settlements[0].dest

    applied = sum(outcome.kind == "applied" for outcome in outcomes)
    assert applied == log_rows  # every applied outcome is in the log, and nothing else is


def check_log(index: int, path: list[Firing], keys: list[str]) -> None:
    """The log holds each logical event once, in order; one competing answer at most."""
    if not competing(index):
        assert keys == [firing.key for firing in path]
        return
    assert keys[:-1] == [firing.key for firing in path[:-2]]
    assert keys[-1] in {firing.key for firing in path[-2:]}


def check_key(store: SqlStore, firing: Firing, kinds: Counter[str], *, logged: bool) -> None:
    """Each delivery of ``firing`` ended once, and every refusal of it is recorded as such."""
    assert sum(kinds.values()) == WORKERS, (firing.key, kinds)
    assert kinds["applied"] == int(logged), (firing.key, kinds)
    if logged:
        assert kinds["applied"] + kinds["duplicate"] + kinds["exhausted"] == WORKERS, kinds
    else:  # the competing answer that lost: refused as stale, never applied
        assert firing.event in COMPETING
        assert kinds["stale"] + kinds["exhausted"] == WORKERS, kinds
    rows = Counter(
        rejected.reason
        for rejected in store.rejections(firing.instance_id)
        if rejected.idempotency_key == firing.key
    )
    assert rows == Counter(
        {RECORDED_AS[kind]: n for kind, n in kinds.items() if kind in RECORDED_AS}
    )


def race_stats(reports: list[Report]) -> dict[str, object]:
    outcomes: list[Outcome] = [outcome for report in reports for outcome in report.outcomes]
    return {
        "lost_races": sum(report.lost_races for report in reports),
        "max_attempts": max(outcome.attempts for outcome in outcomes),
        "exhausted": sum(outcome.kind == "exhausted" for outcome in outcomes),
        "outcomes": dict(Counter(outcome.kind for outcome in outcomes)),
        "seconds": [round(report.seconds, 2) for report in reports],
    }


def test_processes_racing_on_one_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race.sqlite3'}"
    store = start_payments(url)
    try:
        with store.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        reports = race(the_race(url))
        stats = race_stats(reports)
        logger.info("race on %s: %s", store.dialect, stats)
        check_race(store, reports)
        assert stats["lost_races"], "the workers never collided"
        assert stats["exhausted"] == 0, stats  # each lost race was won on the next attempt
    finally:
        store.dispose()


@pytest.mark.postgres
def test_processes_racing_on_postgres(postgres_schema_url: str) -> None:
    store = start_payments(postgres_schema_url)
    try:
        reports = race(the_race(postgres_schema_url))
        stats = race_stats(reports)
        logger.info("race on %s: %s", store.dialect, stats)
        check_race(store, reports)
        # the row lock queues the writers: nobody reads a version that then moves
        assert (stats["exhausted"], stats["lost_races"]) == (0, 0), stats
    finally:
        store.dispose()


def test_sqlite_races_lost_on_a_single_attempt_surface_and_change_nothing(tmp_path: Path) -> None:
    """Without retries a lost race reaches the caller as ConcurrentTransition, recorded nowhere.

    Every event is still applied exactly once (the race was lost to a worker that applied it),
    so the same checks hold with ``exhausted`` outcomes among the duplicates.
    """
    url = f"sqlite:///{tmp_path / 'race.sqlite3'}"
    store = start_payments(url)
    try:
        reports = race(the_race(url, RetryPolicy(attempts=1)))
        stats = race_stats(reports)
        logger.info("race on sqlite, one attempt: %s", stats)
        check_race(store, reports)
        assert stats["exhausted"] == stats["lost_races"], stats
        assert stats["exhausted"], "the workers never collided"
        assert stats["max_attempts"] == 1, stats
    finally:
        store.dispose()


def test_sqlite_lock_held_past_the_busy_timeout_ends_in_concurrent_transition(
    tmp_path: Path,
) -> None:
    """``database is locked`` is a lost race: retried, bounded, then ConcurrentTransition."""
    path = tmp_path / "locked.sqlite3"
    url = f"sqlite:///{path}"
    store = start_payments(url, count=1)
    policy = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
    busy_ms = 200
    first = payment_path(0)[0]
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # a writer that keeps the lock, e.g. a stuck job
        reports = race(
            [Assignment(n, url, [first], policy, 1, busy_timeout_ms=busy_ms) for n in range(2)]
        )
        holder.execute("ROLLBACK")
        for report in reports:
            (outcome,) = report.outcomes
            assert (outcome.kind, outcome.attempts) == ("exhausted", policy.attempts)
            assert report.lost_races == policy.attempts
            # each attempt waited out the busy timeout, and nothing waited much longer
            assert 0.9 * policy.attempts * busy_ms / 1000 <= report.seconds < 5, report.seconds
        pid = first.instance_id
        assert (store.get(pid).version, store.history(pid), store.rejections(pid)) == (0, [], [])
        retried = Engine(store, flows=FLOWS).fire_with_retry(
            pid, first.event, actor=first.actor, idempotency_key=first.key, policy=policy
        )
        assert retried.applied
    finally:
        holder.close()
        store.dispose()
