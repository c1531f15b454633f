"""A reconciler replica for the multi-process reconcile test: passes at given moments, reports.

It lives in its own module because the test starts replicas with ``spawn``, which imports the
target function by name in a fresh interpreter.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

import httpx

from adapters.nicepay.client import NicepayClient
from adapters.nicepay.config import InquiryRetry, NicepayCredentials
from adapters.reconcile.deadlines import DeadlineRun
from adapters.reconcile.recovery import ReconcilePass, Reconciler, Repair
from adapters.service import PaymentService
from fsm.clock import ManualClock
from fsm.engine import Engine
from fsm.flows import FLOWS
from fsm.store.leases import Leases
from fsm.store.sql import SqlStore

BARRIER_WAIT = 30.0
MAX_PASSES = 50
"""More passes than any round needs: a round still finding work then is looping, not draining."""


@dataclass(frozen=True)
class Replica:
    """What one replica is told: where everything is, and the moments it reconciles at."""

    number: int
    db_url: str
    nicepay_url: str
    imid: str
    merchant_key: str
    rounds: tuple[datetime, ...]
    """Every replica meets the others before each round, and drains it pass by pass."""
    limit: int
    lease: timedelta


@dataclass
class Round:
    """Everything one replica did at one moment."""

    deadlines: list[DeadlineRun] = field(default_factory=list)
    repairs: list[Repair] = field(default_factory=list)
    passes: int = 0

    def add(self, one: ReconcilePass) -> bool:
        """Take one pass in; true when it found anything to do."""
        self.passes += 1
        self.deadlines += one.deadlines
        self.repairs += one.repairs
        return bool(one.deadlines or one.repairs)


@dataclass
class ReplicaReport:
    """Sent back through the queue, once, at the end."""

    number: int
    owner: str = ""
    rounds: list[Round] = field(default_factory=list)
    crash: str | None = None


def run_replica(replica: Replica, barrier: Barrier, reports: Queue[ReplicaReport]) -> None:
    """Open a store and a NICEPAY client of its own, then reconcile each round with the others."""
    report = ReplicaReport(replica.number)
    try:
        store = SqlStore(replica.db_url)
        try:
            with httpx.Client(timeout=httpx.Timeout(10.0)) as http:
                clock = ManualClock(replica.rounds[0])
                reconciler = _reconciler(replica, store, http, clock)
                report.owner = reconciler.owner
                Leases(store).due(replica.rounds[0], limit=1)  # connect before the start line
                for moment in replica.rounds:
                    barrier.wait(timeout=BARRIER_WAIT)
                    clock.advance(moment - clock.now())
                    report.rounds.append(_drain(reconciler, moment))
        finally:
            store.dispose()
    except BaseException:  # the whole replica failed: say how, the test fails on it
        report.crash = traceback.format_exc()
    reports.put(report)


def _reconciler(
    replica: Replica, store: SqlStore, http: httpx.Client, clock: ManualClock
) -> Reconciler:
    # The engine's clock stands at the round's moment, so what a pass schedules (the next poll,
    # the order confirmation) falls after it and the round ends once the due work is done.
    engine = Engine(store, flows=FLOWS, clock=clock)
    credentials = NicepayCredentials(
        imid=replica.imid, merchant_key=replica.merchant_key, base_url=replica.nicepay_url
    )
    client = NicepayClient(
        http,
        credentials,
        clock=clock,
        inquiry_retry=InquiryRetry(attempts=3, base_delay=0.02, max_delay=0.1),
    )
    service = PaymentService(
        engine, client, store=store, notification_url="/unused", callback_url="/unused"
    )  # a reconciler registers nothing, so NICEPAY never needs these URLs
    return Reconciler(service, lease=replica.lease, limit=replica.limit)


def _drain(reconciler: Reconciler, moment: datetime) -> Round:
    done = Round()
    while done.add(reconciler.run_once(now=moment)):
        if done.passes >= MAX_PASSES:
            raise RuntimeError(f"still finding work after {MAX_PASSES} passes at {moment}")
    return done
