"""Scale: fire latency and process memory with more and more payments stored.

One SQLite file per size (synchronous=NORMAL, so the fsync does not drown the lookups), each
payment stored with its row and one log row. Every operation picks a random stored payment and
polls it (``check_status`` then ``report_pending``); the reported time is per event. The hot
statements' query plans are checked for full scans, and the process's RSS is sampled after each
batch: nothing may be kept per payment in memory.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from fsm.definition import Actor
from fsm.engine import Engine
from fsm.flows import FLOWS, PaymentEvent, PaymentState
from fsm.store.sql import SqlStore
from perf.chain import KEYS
from perf.durable import RawSqlite
from perf.fixtures import PENDING_PAYLOAD, payment_id, seeded_sqlite
from perf.harness import Comparison, Target, Variant, rss_kib
from perf.settings import Settings

LOOKUPS = {
    "load instance": "SELECT * FROM flow_instance WHERE id = ?",
    "idempotency key": "SELECT * FROM transition_log WHERE instance_id = ? AND idempotency_key = ?",
    "compare-and-set": "UPDATE flow_instance SET state = ? WHERE id = ? AND version = ?",
    "history": "SELECT * FROM transition_log WHERE instance_id = ? ORDER BY seq",
    "refused events": "SELECT * FROM rejected_event WHERE instance_id = ? ORDER BY id",
    "notification by tXid": "SELECT * FROM flow_instance WHERE tx_id = ?",
    "notification by referenceNo": "SELECT * FROM flow_instance WHERE reference_no = ?",
    "due deadlines": "SELECT * FROM flow_instance WHERE deadline_at <= ? ORDER BY deadline_at",
}
"""Every lookup the engine and the adapters make, with the shape of its ``WHERE``."""


CHECK, PENDING = str(PaymentEvent.CHECK_STATUS), str(PaymentEvent.REPORT_PENDING)


def label(size: int) -> str:
    """The variant name for ``size`` stored payments."""
    return f"{size:,} stored"


def query_plans(path: str) -> dict[str, str]:
    """``EXPLAIN QUERY PLAN`` of each lookup; a plan with ``SCAN`` reads the whole table."""
    conn = sqlite3.connect(path)
    try:
        plans = {}
        for name, sql in LOOKUPS.items():
            params = (None,) * sql.count("?")
            rows = conn.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
            plans[name] = "; ".join(str(row[-1]) for row in rows)
        return plans
    finally:
        conn.close()


def engine_batch(store: SqlStore, size: int, seed: int) -> Callable[[int], float]:
    """Poll random stored payments; returns seconds for ``2 * ops`` events."""
    engine, rng, laps = Engine(store, flows=FLOWS), random.Random(seed), [0]  # noqa: S311 - sampling

    def run(ops: int) -> float:
        picks = [payment_id(rng.randrange(size)) for _ in range(ops)]
        lap = laps[0] = laps[0] + 1
        start = time.perf_counter()
        for number, instance_id in enumerate(picks):
            key = f"scale:{lap}:{number}"
            engine.fire(
                instance_id, PaymentEvent.CHECK_STATUS, actor=Actor.MERCHANT, idempotency_key=key
            )
            engine.fire(
                instance_id,
                PaymentEvent.REPORT_PENDING,
                actor=Actor.STATUS_INQUIRY,
                idempotency_key=key + ":answer",
                payload=PENDING_PAYLOAD,
            )
        return (time.perf_counter() - start) / 2

    return run


def raw_batch(path: str, size: int, seed: int) -> tuple[Callable[[int], float], RawSqlite]:
    """The raw floor polling random payments of the same file (keys of its own)."""
    raw, rng, laps = RawSqlite(path, "NORMAL"), random.Random(seed), [0]  # noqa: S311 - sampling

    def run(ops: int) -> float:
        picks = [payment_id(rng.randrange(size)) for _ in range(ops)]
        lap = laps[0] = laps[0] + 1
        start = time.perf_counter()
        for number, instance_id in enumerate(picks):
            key = f"raw:{lap}:{number}"
            raw(instance_id, CHECK, "merchant", key, {})
            raw(instance_id, PENDING, "status_inquiry", key + ":answer", PENDING_PAYLOAD)
        return (time.perf_counter() - start) / 2

    return run, raw


def raw_label(size: int) -> str:
    """The raw floor's variant name for ``size`` stored payments."""
    return f"raw sqlite3, {size:,} stored"


def comparison(config: Settings, stack: ExitStack) -> Comparison:
    """One variant per stored size; ratios against the smallest."""
    variants, plans, built = [], {}, {}
    for size in config.scale_sizes:
        path = str(config.workdir / f"scale-{size}.sqlite3")
        started = time.perf_counter()
        url = seeded_sqlite(
            path,
            size,
            state=PaymentState.PAYMENT_PENDING,
            path_steps=((PaymentEvent.SEND_REGISTRATION, Actor.MERCHANT),),
        )
        built[label(size)] = round(time.perf_counter() - started, 2)
        plans[label(size)] = query_plans(path)
        store = SqlStore(url, sqlite_synchronous="NORMAL", audit_keys=KEYS)
        stack.callback(store.dispose)
        variants.append(Variant(label(size), engine_batch(store, size, seed=size)))
        if size in (config.scale_sizes[0], config.scale_sizes[-1]):
            run, raw = raw_batch(path, size, seed=-size)
            stack.callback(raw.close)
            variants.append(Variant(raw_label(size), run, "same file, for reference"))
    rss: dict[str, list[int]] = {variant.name: [] for variant in variants}
    extra: dict[str, Any] = {
        "rss_kib_at_start": rss_kib(),
        "rss_kib_after_batches": rss,
        "build_seconds": built,
        "query_plans": plans,
        "full_scans": sorted(
            f"{size}: {name}"
            for size, by_name in plans.items()
            for name, plan in by_name.items()
            if "SCAN" in plan
        ),
    }
    smallest, largest = label(config.scale_sizes[0]), label(config.scale_sizes[-1])
    extra["reference"] = [raw_label(config.scale_sizes[-1]), raw_label(config.scale_sizes[0])]
    notes = ["synchronous=NORMAL; per event, random payments"]
    if config.quick:
        notes.append("--quick: smaller sizes than the full run's 1,000 / 100,000 / 1,000,000")
    return Comparison(
        name="scale",
        title="fire latency by payments stored (per event)",
        floor=smallest,
        variants=variants,
        ops=config.scale_ops,
        rounds=config.rounds,
        targets=(
            Target(largest, smallest, 1.3, f"latency at {largest} within 1.3 times {smallest}"),
        ),
        notes=notes,
        extra=extra,
        after_batch=lambda name: rss[name].append(rss_kib()),
    )
