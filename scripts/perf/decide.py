"""Decide: what ``Engine.fire`` does in memory, against a dict-table FSM doing the same lookup.

The engine runs its real ``fire`` on the library's :class:`~fsm.store.memory.MemoryStore`: the
input checks, the payload's clean copy, the actor check, the guard (``redirect_customer`` from
``payment_requested`` is guarded by the wallet), the record built with its deadline, and the
store's compare-and-set and log append. Each event moves a payment of its own, so every one is
decided from ``payment_requested``. An allowed step's key is checked by the log's unique key as
it is written, so the engine looks nothing up here; the dict FSM does its lookup all the same.
The raw durable floor (dict FSM plus ``sqlite3`` commit at NORMAL) runs in the same rounds, for
the issue's target that deciding stays under a quarter of one commit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any, cast

from fsm.decide import decide
from fsm.definition import Actor
from fsm.engine import Engine
from fsm.flows import FLOWS, PaymentEvent, PaymentState
from fsm.model import Instance
from fsm.store.memory import MemoryStore
from perf.chain import KEYS
from perf.durable import RawSqlite, Workload, timed
from perf.fixtures import FLOW, WALLET, DictFlow, dict_flow, seeded_sqlite
from perf.harness import Comparison, Target, Variant
from perf.settings import Settings

EVENT = str(PaymentEvent.REDIRECT_CUSTOMER)
ACTOR = Actor.MERCHANT
REDIRECT_WALLETS = frozenset({"dana", "linkaja", "shopeepay"})


def _instance(instance_id: str = "pay-decide") -> Instance:
    now = datetime.now(UTC)
    return Instance(
        id=instance_id,
        flow=FLOW.name,
        state=str(PaymentState.PAYMENT_REQUESTED),  # as loaded: text, not the enum
        version=3,
        wallet=WALLET,
        amount="150000",
        currency="IDR",
        reference_no=f"ORD-{instance_id}",
        tx_id="TX-decide",
        mandate=None,
        deadline_at=None,
        created_at=now,
        updated_at=now,
    )


def engine_batch(keys: list[str]) -> Callable[[int], float]:
    """``Engine.fire`` on a fresh in-memory store each round, one waiting payment per event."""

    def run(size: int) -> float:
        store = MemoryStore(audit_keys=KEYS)
        engine = Engine(store, flows=FLOWS)
        ids = [f"pay-decide-{number}" for number in range(size)]
        for instance_id in ids:
            store.insert_instance(_instance(instance_id))
        fire = engine.fire
        start = time.perf_counter()
        for instance_id, key in zip(ids, keys[:size], strict=True):
            fire(instance_id, EVENT, actor=ACTOR, idempotency_key=key)
        return time.perf_counter() - start

    return run


def dict_decide(
    flow: DictFlow, instance: Instance, event: str, actor: str, key: str, seen: dict[str, Any]
) -> tuple[Any, ...]:
    """The hand-written decision: table lookup, actor, guard, idempotency, record."""
    dest, actors = flow.moves[instance.state, event]
    if actor not in actors:
        raise PermissionError(actor)
    if instance.wallet not in REDIRECT_WALLETS:
        raise PermissionError("guard")
    prior = seen.get(key)
    if prior is not None:
        return cast(tuple[Any, ...], prior)
    now = datetime.now(UTC)
    deadline = flow.deadlines.get(dest)
    due = None if deadline is None else now + deadline
    return (instance.id, instance.version + 1, event, instance.state, dest, actor, key, now, due)


def dict_batch(keys: list[str]) -> Callable[[int], float]:
    """The dict FSM deciding the same event."""
    instance, flow, seen = _instance(), dict_flow(), dict[str, Any]()

    def run(size: int) -> float:
        start = time.perf_counter()
        for key in keys[:size]:
            dict_decide(flow, instance, EVENT, "merchant", key, seen)
        return time.perf_counter() - start

    return run


def decision_batch() -> Callable[[int], float]:
    """The decision alone, read from the flow's compiled table (for reference)."""
    instance = _instance()

    def run(size: int) -> float:
        start = time.perf_counter()
        for _ in range(size):
            decide(FLOW, instance, EVENT, ACTOR, {})
        return time.perf_counter() - start

    return run


def comparison(config: Settings, stack: ExitStack) -> Comparison:
    """Decide, with the raw durable floor at NORMAL in the same rounds."""
    keys = [f"decide:{number}" for number in range(config.decide_ops)]
    path = str(config.workdir / "decide-raw-normal.sqlite3")
    seeded_sqlite(path, config.payments, state=PaymentState.PAYMENT_PENDING)
    raw = RawSqlite(path, "NORMAL")
    stack.callback(raw.close)
    return Comparison(
        name="decide",
        title="decide in memory (per event)",
        floor="dict FSM",
        variants=(
            Variant("dict FSM", dict_batch(keys), "table lookup, actor, guard, key, record"),
            Variant("Engine.fire, store in memory", engine_batch(keys), "everything but SQL"),
            Variant("fsm.decide.decide only", decision_batch(), "for reference"),
            Variant(
                "raw durable fire, NORMAL",
                timed(Workload(config.payments), raw),
                "dict FSM + sqlite3 commit",
            ),
        ),
        ops=config.decide_ops,
        rounds=config.rounds,
        targets=(
            Target(
                "Engine.fire, store in memory",
                "raw durable fire, NORMAL",
                0.25,
                "deciding costs at most a quarter of the raw durable floor",
            ),
        ),
    )
