"""A merchant replica for the multi-process refund test: the same refund requests, together.

It lives in its own module because the test starts replicas with ``spawn``, which imports the
target function by name in a fresh interpreter.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

import httpx
from pydantic import SecretStr

from adapters.errors import CallInDoubt, RefundError
from adapters.nicepay.client import NicepayClient
from adapters.nicepay.config import InquiryRetry, NicepayCredentials
from adapters.service import PaymentService
from fsm.clock import ManualClock
from fsm.engine import Engine
from fsm.flows import FLOWS
from fsm.store.sql import SqlStore

BARRIER_WAIT = 60.0


@dataclass(frozen=True)
class RefundRound:
    """One refund request every replica makes of every payment; ``{n}`` in ``request_id``
    becomes the replica's number (a different request per replica)."""

    request_id: str
    amount: str


@dataclass(frozen=True)
class Replica:
    """What one replica is told: where everything is, and what to ask for."""

    number: int
    db_url: str
    nicepay_url: str
    imid: str
    merchant_key: str
    moment: datetime
    payment_ids: tuple[str, ...]
    rounds: tuple[RefundRound, ...]


@dataclass
class ReplicaReport:
    """Per round, per payment: the refund's status, or the name of the error it raised."""

    number: int
    rounds: list[list[str]] = field(default_factory=list)
    crash: str | None = None


def run_replica(replica: Replica, barrier: Barrier, reports: Queue[ReplicaReport]) -> None:
    """Open a store and a NICEPAY client of its own, then make each round's requests with the
    other replicas."""
    report = ReplicaReport(replica.number)
    try:
        store = SqlStore(replica.db_url)
        try:
            with httpx.Client(timeout=httpx.Timeout(10.0)) as http:
                service = _service(replica, store, http)
                store.get(replica.payment_ids[0])  # connect before the start line
                for refund_round in replica.rounds:
                    barrier.wait(timeout=BARRIER_WAIT)
                    report.rounds.append(_ask(service, replica, refund_round))
        finally:
            store.dispose()
    except BaseException:  # the whole replica failed: say how, the test fails on it
        report.crash = traceback.format_exc()
    reports.put(report)


def _service(replica: Replica, store: SqlStore, http: httpx.Client) -> PaymentService:
    clock = ManualClock(replica.moment)
    credentials = NicepayCredentials(
        imid=replica.imid,
        merchant_key=SecretStr(replica.merchant_key),
        base_url=replica.nicepay_url,
    )
    retry = InquiryRetry(attempts=3, base_delay=0.02, max_delay=0.1)
    client = NicepayClient(http, credentials, clock=clock, inquiry_retry=retry)
    engine = Engine(store, flows=FLOWS, clock=clock)
    return PaymentService(
        engine, client, store=store, notification_url="/unused", callback_url="/unused"
    )


def _ask(service: PaymentService, replica: Replica, refund_round: RefundRound) -> list[str]:
    outcomes = []
    for payment_id in replica.payment_ids:
        try:
            refund = service.cancel(
                payment_id,
                request_id=refund_round.request_id.format(n=replica.number),
                amount=refund_round.amount,
                requested_by=f"replica-{replica.number}",
            )
        except (RefundError, CallInDoubt) as refused:
            outcomes.append(type(refused).__name__)
        else:
            outcomes.append(str(refund.status))
    return outcomes
