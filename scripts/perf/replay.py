"""Replay: verify every stored transition, through the library against raw reads and a dict.

The log holds ``transitions`` rows: payments of ten steps each (checkout to a confirmed order with
one pending poll). The engine side verifies every payment with ``fsm.replay.verify_stored``: a bulk
read of the chained columns (``SqlStore.chained``), every link and seal recomputed under the audit
key, folded through the same checks as ``fsm.replay.replay``. ``SqlStore.history`` and ``replay``
per payment (what ``ewallet-fsm replay`` does for one payment: full records with their payloads)
run alongside for reference. The floor runs raw ``SELECT``s per payment of the same columns (its
log rows, its instance row) and checks each step against a dict: the sequence, the fingerprint, the
source, that the transition is declared for that actor, and its link (``perf.chain``); then the
instance row's seal.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from fsm.chain import ChainStatus
from fsm.flows import PaymentState
from fsm.replay import Verdict, replay, verify_stored
from fsm.store.sql import SqlStore
from perf.chain import KEY_ID, KEYS, link, seal, sqlite_text
from perf.fixtures import FLOW, PATH, DictFlow, dict_flow, payment_id, seeded_sqlite
from perf.harness import Comparison, Target, Variant
from perf.settings import Settings

SELECT_STEPS = (
    "SELECT instance_id, seq, event, source, dest, actor, idempotency_key, payload, occurred_at, "
    "fingerprint, chain_link, chain_key, flow_version FROM transition_log WHERE instance_id = ? "
    "ORDER BY seq"
)
SELECT_SEALED = (
    "SELECT id, flow, state, version, wallet, amount, currency, reference_no, tx_id, mandate, "
    "refunded_amount, chain_link, chain_seal, chain_key, flow_version "
    "FROM flow_instance WHERE id = ?"
)


def engine_batch(store: SqlStore, payments: list[str]) -> Callable[[int], float]:
    """``store.history`` and ``replay`` for every payment; ``size`` full replays."""

    def run(size: int) -> float:
        start = time.perf_counter()
        for _ in range(size):
            for instance_id in payments:
                result = replay(FLOW, store.history(instance_id))
                if result.divergence is not None or result.applied != len(PATH):
                    raise AssertionError(result)
        return time.perf_counter() - start

    return run


def bulk_batch(store: SqlStore, payments: list[str]) -> Callable[[int], float]:
    """``verify_stored`` over every payment; ``size`` full replays."""

    def run(size: int) -> float:
        start = time.perf_counter()
        for _ in range(size):
            results = verify_stored(store, FLOW, payments)
            for result in results.values():
                if result.verdict is not Verdict.CONSISTENT or result.applied != len(PATH):
                    raise AssertionError(result)
                if result.chain is None or result.chain.status is not ChainStatus.INTACT:
                    raise AssertionError(result)
            if len(results) != len(payments):
                raise AssertionError(len(results))
        return time.perf_counter() - start

    return run


def verify(flow: DictFlow, rows: list[tuple[Any, ...]], sealed: tuple[Any, ...]) -> tuple[str, int]:
    """The hand-written verified fold with the chain checked: each step's link recomputed, then
    the instance row's seal; raises ``ValueError`` at the first bad step."""
    state, applied, latest = flow.initial, 0, ""
    for row in rows:
        _, seq, event, source, dest, actor, _, _, at, fingerprint, stored, key_id, version = row
        if seq != applied + 1 or fingerprint != flow.fingerprint or source != state:
            raise ValueError(seq)
        if version != FLOW.version:
            raise ValueError(seq)
        actors = flow.declared.get((state, event, dest))
        if actors is None or actor not in actors or key_id != KEY_ID:
            raise ValueError(seq)
        values = (*row[:8], sqlite_text(at), fingerprint, version)
        if link(latest, values) != stored:
            raise ValueError(seq)
        state, applied, latest = dest, seq, stored
    sealed_values = (*sealed[:11], sealed[14])
    if sealed[11] != latest or sealed[13] != KEY_ID or seal(latest, sealed_values) != sealed[12]:
        raise ValueError("instance row")
    return state, applied


def raw_batch(path: str, payments: list[str]) -> tuple[Callable[[int], float], sqlite3.Connection]:
    """One raw ``SELECT`` and the dict fold per payment."""
    conn = sqlite3.connect(path, check_same_thread=False)
    flow = dict_flow()

    def run(size: int) -> float:
        start = time.perf_counter()
        for _ in range(size):
            for instance_id in payments:
                steps = conn.execute(SELECT_STEPS, (instance_id,)).fetchall()
                sealed = conn.execute(SELECT_SEALED, (instance_id,)).fetchone()
                state, applied = verify(flow, steps, sealed)
                if applied != len(PATH):
                    raise AssertionError((instance_id, state, applied))
        return time.perf_counter() - start

    return run, conn


def comparison(config: Settings, stack: ExitStack) -> Comparison:
    """Replay ``config.replay_transitions`` stored transitions, both ways, from one file."""
    count = config.replay_transitions // len(PATH)
    path = str(config.workdir / "replay.sqlite3")
    url = seeded_sqlite(path, count, state=PaymentState.ORDER_CONFIRMED, path_steps=PATH)
    store = SqlStore(url, audit_keys=KEYS)
    stack.callback(store.dispose)
    payments = [payment_id(number) for number in range(count)]
    raw, conn = raw_batch(path, payments)
    stack.callback(conn.close)
    return Comparison(
        name="replay",
        title=f"verified replay of {count * len(PATH):,} transitions (per full replay)",
        floor="raw sqlite3 + dict",
        variants=(
            Variant("raw sqlite3 + dict", raw, f"one SELECT per payment ({count:,})"),
            Variant("verify_stored", bulk_batch(store, payments), "bulk read, checked columns"),
            Variant("SqlStore.history + replay", engine_batch(store, payments), "per payment"),
        ),
        ops=1,
        rounds=config.rounds,
        targets=(
            Target(
                "verify_stored",
                "raw sqlite3 + dict",
                2.0,
                "at most 2 times the raw floor",
            ),
        ),
        extra={"payments": count, "steps_per_payment": len(PATH)},
    )
