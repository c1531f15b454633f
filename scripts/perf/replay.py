"""Replay: verify every stored transition, through the library against raw reads and a dict.

The log holds ``transitions`` rows: payments of ten steps each (checkout to a confirmed order with
one pending poll). The engine side verifies every payment with ``fsm.replay.verify_stored``: a bulk
read of the checked columns (``SqlStore.replay_rows``) folded through the same checks as
``fsm.replay.replay``. ``SqlStore.history`` and ``replay`` per payment (what ``ewallet-fsm replay``
does for one payment: full records with their payloads) run alongside for reference. The floor
runs one raw ``SELECT`` per payment of the columns it needs and checks each step against a dict:
the sequence, the fingerprint, the source, and that the transition is declared for that actor.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from contextlib import ExitStack

from fsm.flows import PaymentState
from fsm.replay import replay, verify_stored
from fsm.store.sql import SqlStore
from perf.fixtures import FLOW, PATH, DictFlow, dict_flow, payment_id, seeded_sqlite
from perf.harness import Comparison, Target, Variant
from perf.settings import Settings

SELECT_STEPS = (
    "SELECT seq, event, source, dest, actor, fingerprint FROM transition_log "
    "WHERE instance_id = ? ORDER BY seq"
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
                if result.divergence is not None or result.applied != len(PATH):
                    raise AssertionError(result)
            if len(results) != len(payments):
                raise AssertionError(len(results))
        return time.perf_counter() - start

    return run


def verify(flow: DictFlow, rows: list[tuple[int, str, str, str, str, str]]) -> tuple[str, int]:
    """The hand-written verified fold; raises ``ValueError`` at the first bad step."""
    state, applied = flow.initial, 0
    for seq, event, source, dest, actor, fingerprint in rows:
        if seq != applied + 1 or fingerprint != flow.fingerprint or source != state:
            raise ValueError(seq)
        actors = flow.declared.get((state, event, dest))
        if actors is None or actor not in actors:
            raise ValueError(seq)
        state, applied = dest, seq
    return state, applied


def raw_batch(path: str, payments: list[str]) -> tuple[Callable[[int], float], sqlite3.Connection]:
    """One raw ``SELECT`` and the dict fold per payment."""
    conn = sqlite3.connect(path, check_same_thread=False)
    flow = dict_flow()

    def run(size: int) -> float:
        start = time.perf_counter()
        for _ in range(size):
            for instance_id in payments:
                state, applied = verify(flow, conn.execute(SELECT_STEPS, (instance_id,)).fetchall())
                if applied != len(PATH):
                    raise AssertionError((instance_id, state, applied))
        return time.perf_counter() - start

    return run, conn


def comparison(config: Settings, stack: ExitStack) -> Comparison:
    """Replay ``config.replay_transitions`` stored transitions, both ways, from one file."""
    count = config.replay_transitions // len(PATH)
    path = str(config.workdir / "replay.sqlite3")
    url = seeded_sqlite(path, count, state=PaymentState.ORDER_CONFIRMED, path_steps=PATH)
    store = SqlStore(url)
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
