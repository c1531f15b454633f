"""Refund requests from four replicas at once: each request refunded once, counted at NICEPAY.

Four spawned processes (each with its own store, engine and NICEPAY client) make the same refund
requests of the same 20 paid payments, released together before every round, against one
database and one loopback simulator that counts the cancels it serves per tXid:

1. the same request (one ``request_id``) everywhere: exactly one cancel per payment;
2. a second, different request, again everywhere: one more cancel, and the refunded total adds up;
3. a request for more than is left: refused everywhere, nothing sent;
4. a different request per replica, each fitting alone but not together: exactly one refunded.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from adapters.reconcile.intents import Call
from fsm.flows import Wallet
from fsm.refunds import refund_requests
from fsm.store.sql import SqlStore
from tests.adapters.refund_rig import NOON_WIB, RefundRig, refund_rig
from tests.adapters.refund_worker import RefundRound, Replica, ReplicaReport, run_replica
from tests.adapters.test_reconcile_replicas import collect, running

REPLICAS = 4
PAYMENTS = 20
HANG_LIMIT = 180.0
"""Seconds the four replicas together may take over every round."""
ROUNDS = (
    RefundRound("refund-A", "50000"),
    RefundRound("refund-B", "30000"),
    RefundRound("refund-C", "100000"),  # 80000 refunded: only 70000 is left
    RefundRound("race-{n}", "40000"),  # one fits in the 70000 left, two do not
)
SETTLED = {"succeeded", "pending"}
"""What a request asked again answers while the first one's call is under way, or after."""


@contextmanager
def paid_payments(db_url: str) -> Iterator[tuple[RefundRig, list[str]]]:
    with refund_rig(db_url) as rig:
        wallets = (Wallet.SHOPEEPAY, Wallet.DANA)
        ids = [rig.paid(f"{n:02d}", wallets[n % 2]).id for n in range(PAYMENTS)]
        yield rig, ids


def run_replicas(db_url: str, rig: RefundRig, payment_ids: list[str]) -> list[ReplicaReport]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(REPLICAS)
    reports: multiprocessing.queues.Queue[ReplicaReport] = context.Queue()
    config = rig.nicepay.config
    processes = [
        context.Process(
            target=run_replica,
            args=(
                Replica(
                    n,
                    db_url,
                    rig.nicepay.url,
                    config.imid,
                    config.merchant_key.get_secret_value(),
                    NOON_WIB,
                    tuple(payment_ids),
                    ROUNDS,
                ),
                barrier,
                reports,
            ),
            name=f"refund-replica-{n}",
        )
        for n in range(REPLICAS)
    ]
    with running(processes):
        received = sorted(collect(reports, processes, HANG_LIMIT), key=lambda r: r.number)
    reports.close()
    assert [p.exitcode for p in processes] == [0] * REPLICAS
    crashes = [report.crash for report in received if report.crash]
    assert not crashes, crashes[0]
    return received


def outcomes_of(reports: list[ReplicaReport], round_no: int, index: int) -> Counter[str]:
    """What the replicas were told in round ``round_no`` for payment ``index``."""
    return Counter(report.rounds[round_no][index] for report in reports)


def assert_told(told: list[Counter[str]]) -> None:
    """What the replicas were told about one payment, round by round."""
    for retried in told[:2]:  # the same request everywhere: one carried it out
        assert set(retried) <= SETTLED, told
        assert retried["succeeded"] >= 1, told
    assert told[2] == Counter({"RefundExceedsPayment": REPLICAS}), told
    assert told[3]["succeeded"] == 1, told
    assert set(told[3]) <= {"succeeded", "CallInDoubt", "RefundExceedsPayment"}, told


def assert_refunded_once_per_request(rig: RefundRig, payment_id: str) -> None:
    """Counted at NICEPAY: requests A and B once each, and one of the racing four."""
    payment = rig.engine.get(payment_id)
    assert rig.cancels_sent(payment) == 3, payment_id
    assert rig.refunded_at_nicepay(payment) == "120000"
    assert (payment.state, payment.refunded_amount) == ("refunded", "120000")
    asked = [r.request_id for r in refund_requests(rig.engine.history(payment_id))]
    assert asked[:2] == ["refund-A", "refund-B"]
    assert len(asked) == 3
    assert asked[2].startswith("race-")
    cancels = [i for i in rig.service.calls.of_instance(payment_id) if i.call == Call.CANCEL]
    answered = [i.call_key for i in cancels if i.outcome == "answered"]
    assert answered == [f"refund:{request_id}" for request_id in asked]
    assert {i.outcome for i in cancels} <= {"answered", "refused:exceeds_payment"}


def test_four_replicas_refund_each_request_once(store: SqlStore, db_url: str) -> None:
    with paid_payments(db_url) as (rig, payment_ids):
        reports = run_replicas(db_url, rig, payment_ids)
        for index, payment_id in enumerate(payment_ids):
            assert_told([outcomes_of(reports, n, index) for n in range(len(ROUNDS))])
            assert_refunded_once_per_request(rig, payment_id)
        assert rig.service.calls.still_open() == []
