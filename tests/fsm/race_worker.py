"""A worker process for the multi-process race test: fires one script, reports every outcome.

It lives in its own module because the test starts workers with the ``spawn`` method, which
imports the target function by name in a fresh interpreter.
"""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

from fsm import (
    Actor,
    ConcurrentTransition,
    Engine,
    RetryPolicy,
    SqlStore,
    StaleEvent,
    TransitionNotAllowed,
    TransitionResult,
)
from fsm.flows import FLOWS

FLOW = "ewallet_payment"
WALLETS = ("ovo", "dana", "linkaja", "shopeepay")
COMPETING = ("confirm_payment", "expire_payment")
"""Two inquiry answers for one payment, under different keys: only one may settle it."""


@dataclass(frozen=True)
class Firing:
    """One delivery of a logical event: every worker fires it with the same key."""

    instance_id: str
    event: str
    actor: Actor
    key: str
    payload: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Outcome:
    """What one worker's ``fire_with_retry`` of one firing ended in."""

    instance_id: str
    key: str
    kind: str
    """``applied``, ``duplicate``, ``stale``, ``refused:<why>``, ``exhausted`` or ``error:...``."""
    attempts: int


@dataclass
class Report:
    """Everything a worker sends back through the queue, once, at the end."""

    worker: int
    outcomes: list[Outcome] = field(default_factory=list)
    lost_races: int = 0
    seconds: float = 0.0
    crash: str | None = None


def payment_id(index: int) -> str:
    return f"race-{index:03d}"


def payment_path(index: int) -> list[Firing]:
    """A payment's road to ``status_check_requested`` and its inquiry answer(s).

    Even payments are confirmed by one inquiry answer; odd ones receive two competing answers
    (paid and expired), which is what happens when a late inquiry and the expiry check cross.
    """
    pid = payment_id(index)
    wallet = WALLETS[index % len(WALLETS)]
    tx_id = f"TX{index:08d}"
    reach = "push_to_app" if wallet == "ovo" else "redirect_customer"
    steps = [
        Firing(pid, "send_registration", Actor.MERCHANT, f"register:{pid}"),
        Firing(
            pid,
            "accept_registration",
            Actor.PROVIDER_RESPONSE,
            f"registration-reply:{pid}",
            {"tx_id": tx_id, "reference_no": f"ORD-{index:04d}", "resultCd": "0000"},
        ),
        Firing(pid, "request_payment", Actor.MERCHANT, f"payment-request:{pid}"),
        Firing(pid, reach, Actor.PROVIDER_RESPONSE, f"payment-reply:{pid}"),
        Firing(
            pid,
            "receive_notification",
            Actor.PROVIDER_NOTIFICATION,
            f"notification:{tx_id}:1",
            {"tXid": tx_id, "status": "9"},
        ),
        Firing(pid, "check_status", Actor.TIMER, f"deadline:{pid}:1"),
        Firing(pid, "report_pending", Actor.STATUS_INQUIRY, f"inquiry:{tx_id}:1", {"status": "9"}),
        Firing(
            pid,
            "receive_notification",
            Actor.PROVIDER_NOTIFICATION,
            f"notification:{tx_id}:2",
            {"tXid": tx_id, "status": "0"},
        ),
        Firing(pid, "return_from_partner", Actor.BROWSER_CALLBACK, f"callback:{tx_id}"),
    ]
    if competing(index):
        return [*steps, *(settlement(pid, tx_id, event) for event in COMPETING)]
    return [*steps, settlement(pid, tx_id, "confirm_payment")]


def competing(index: int) -> bool:
    """Whether payment ``index`` receives two competing inquiry answers."""
    return index % 2 == 1


def settlement(pid: str, tx_id: str, event: str) -> Firing:
    status = {"confirm_payment": "0", "expire_payment": "5"}[event]
    return Firing(
        pid, event, Actor.STATUS_INQUIRY, f"inquiry:{tx_id}:2:{event}", {"status": status}
    )


def scripts(payments: int, workers: int, seed: int) -> list[list[Firing]]:
    """One script per worker: the same shuffled interleaving of every payment's path.

    Each payment's own steps stay in order (a worker fires step k+1 only after step k was
    applied or absorbed); the payments are interleaved at random, identically for every worker,
    so the workers meet on the same event at the same time. Worker ``n`` fires a payment's two
    competing answers in an order that alternates with ``n``, so both answers arrive first
    somewhere.
    """
    paths = [payment_path(index) for index in range(payments)]
    order = [index for index, path in enumerate(paths) for _ in path]
    random.Random(seed).shuffle(order)
    result = []
    for worker in range(workers):
        own = [
            [*path[:-2], path[-1], path[-2]] if competing(index) and worker % 2 else path
            for index, path in enumerate(paths)
        ]
        cursors = [0] * payments
        script = []
        for index in order:
            script.append(own[index][cursors[index]])
            cursors[index] += 1
        result.append(script)
    return result


class CountingEngine(Engine):
    """An engine that counts its ``fire`` calls and the races they lost."""

    calls = 0
    lost_races = 0

    def fire(self, *args: Any, **kwargs: Any) -> TransitionResult:
        self.calls += 1
        try:
            return super().fire(*args, **kwargs)
        except ConcurrentTransition:
            self.lost_races += 1
            raise


def fire_one(engine: CountingEngine, firing: Firing, policy: RetryPolicy) -> Outcome:
    """``fire_with_retry`` one firing; how it ended and how many attempts it took."""
    before = engine.calls
    try:
        result = engine.fire_with_retry(
            firing.instance_id,
            firing.event,
            actor=firing.actor,
            idempotency_key=firing.key,
            payload=firing.payload,
            policy=policy,
        )
        kind = "duplicate" if result.duplicate else "applied"
    except ConcurrentTransition:
        kind = "exhausted"
    except StaleEvent:
        kind = "stale"
    except TransitionNotAllowed as refusal:
        kind = f"refused:{refusal.reason}"
    except Exception as error:  # reported to the test, which fails on it
        kind = f"error:{type(error).__name__}: {error}"
    return Outcome(firing.instance_id, firing.key, kind, engine.calls - before)


@dataclass(frozen=True)
class Assignment:
    """What one worker is told to do."""

    worker: int
    url: str
    script: Sequence[Firing]
    policy: RetryPolicy
    round_size: int
    """The workers meet at the barrier before every ``round_size`` firings."""
    busy_timeout_ms: int | None = None
    """A shorter SQLite busy timeout than the store's own, to provoke ``database is locked``."""


def run_worker(assignment: Assignment, barrier: Barrier, reports: Queue[Report]) -> None:
    """Open a store of its own, wait for the others, fire the script in rounds, report."""
    report = Report(assignment.worker)
    try:
        store = SqlStore(assignment.url)
        if assignment.busy_timeout_ms is not None:
            _set_busy_timeout(store, assignment.busy_timeout_ms)
        try:
            engine = CountingEngine(store, flows=FLOWS)
            engine.get(assignment.script[0].instance_id)  # connect before the start line
            started = 0.0
            for step, firing in enumerate(assignment.script):
                if step % assignment.round_size == 0:
                    barrier.wait(timeout=30)
                    if step == 0:
                        started = time.monotonic()
                report.outcomes.append(fire_one(engine, firing, assignment.policy))
            report.seconds = time.monotonic() - started
            report.lost_races = engine.lost_races
        finally:
            store.dispose()
    except BaseException:  # the whole worker failed: say how, the test fails on it
        report.crash = traceback.format_exc()
    reports.put(report)


def _set_busy_timeout(store: SqlStore, milliseconds: int) -> None:
    def pragma(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(milliseconds)}")
        cursor.close()

    event.listen(store.engine, "connect", pragma)  # runs after the store's own pragmas
