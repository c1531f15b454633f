"""Reconciler replicas at the same moment: each due payment handled once, NICEPAY asked once.

Four spawned processes (each with its own store, engine and NICEPAY client) run
``Reconciler.run_once`` together, pass after pass, against one database and one loopback
simulator, over payments whose deadlines have all passed: left on the wallet's page or pushed
to the app while the simulator paid, declined, expired or kept them waiting (its notifications
dropped, so only an inquiry can tell), plus payments whose process stopped in the middle of an
inquiry or of a registration. The simulator's inquiries are counted per tXid as it serves them,
and the replicas report every deadline they acted on and every call they repaired.

Claims (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, compare-and-set on SQLite) must give each
payment to exactly one replica, once, so each tXid is inquired exactly once, every payment ends
where the simulator's answer leads, and no claim outlives the round. A replica that claimed and
stopped holds its payments until its lease runs out, and not a moment longer. Last, the
``ewallet-fsm reconcile`` command does the same against the simulator and prints what it did.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import secrets
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import httpx
import pytest
from sqlalchemy import func, select

from adapters.cli import main
from adapters.nicepay.client import NicepayClient
from adapters.reconcile.intents import Call
from adapters.reconcile.journal import CallJournal
from adapters.service import PaymentService
from adapters.simulator.rig import demo_order
from fsm.clock import ManualClock
from fsm.engine import Engine
from fsm.flows import FLOWS, Wallet
from fsm.store.leases import Leases
from fsm.store.sql import SqlStore
from fsm.store.tables import INSTANCE_TABLE
from tests.adapters.counted_nicepay import Nicepay
from tests.adapters.counted_nicepay import counted_inquiries as counted_simulator
from tests.adapters.e2e_rig import audit_store
from tests.adapters.reconcile_worker import Replica, ReplicaReport, run_replica

logger = logging.getLogger(__name__)

REPLICAS = 4
PAYMENTS = 48
LIMIT = 5
"""Small batches, so the replicas come back for more and meet on the same rows many times."""
CUT_SHORT_EVERY = 13
LOST_REGISTRATIONS = 1
"""With the 4 inquiries cut short, as many open calls as one pass lists (``LIMIT``): every
replica tries to repair each before it turns to deadlines. (Beyond the limit, a deadline can
reach a payment before the repair of its call does.)"""
HANG_LIMIT = 60.0
"""Seconds every replica together may take; one still running then is stuck."""
WALLETS = (Wallet.OVO, Wallet.DANA, Wallet.LINKAJA, Wallet.SHOPEEPAY)
PAST_EVERY_DEADLINE = timedelta(hours=25)
"""After DANA's 24 hours, the longest wait a payment has before its status is checked."""
AFTER_ANSWER = {"0": "paid", "8": "failed", "5": "expired", "3": "payment_pending"}
AFTER_ANSWER |= {"4": "payment_pending", "9": "payment_pending"}
"""Where a payment's status check leads for each ``status`` the simulator answers."""


Report = TypeVar("Report")


class ProcessStopped(Exception):
    """The merchant's process stopped while its call was on the way (raised by its transport)."""


@dataclass
class Shop:
    """The merchant in the test process, making the payments the replicas will find due."""

    engine: Engine
    service: PaymentService
    stopping: PaymentService
    """The same shop, on a process that stops as soon as it calls NICEPAY."""
    nicepay: Nicepay
    run: str = field(default_factory=lambda: secrets.token_hex(3))
    due: list[str] = field(default_factory=list)
    """Payments whose status check is due."""
    cut_short: list[str] = field(default_factory=list)
    """Payments whose process stopped while its inquiry was on the way."""
    lost: list[str] = field(default_factory=list)
    """Payments whose process stopped while its registration was on the way."""

    def pay(self, index: int) -> str:
        """Start payment ``index`` and let the simulator's customer pay, decline, or wait."""
        wallet = WALLETS[index % len(WALLETS)]
        reference_no = f"REP-{self.run}-{index:03d}"
        self.nicepay.sim.faults.notification(reference_no, drop=True, times=None)
        started = self.service.start_payment(
            demo_order(reference_no, wallet), payment_id=f"rep-{index:03d}"
        )
        tx_id = started.instance.tx_id or ""
        sim = self.nicepay.sim
        customer = (sim.approve, sim.decline, sim.expire, None)[index // len(WALLETS) % 4]
        if customer is not None:  # None: the customer still has the wallet's page open
            assert customer(tx_id)
        return started.instance.id

    def stop_during_inquiry(self, payment_id: str) -> None:
        with pytest.raises(ProcessStopped):
            self.stopping.check_status(payment_id)
        self.cut_short.append(payment_id)

    def stop_during_registration(self, index: int) -> None:
        reference_no = f"REP-{self.run}-lost-{index}"
        with pytest.raises(ProcessStopped):
            self.stopping.start_payment(
                demo_order(reference_no, Wallet.DANA), payment_id=f"lost-{index}"
            )
        self.lost.append(f"lost-{index}")


def shop_service(engine: Engine, store: SqlStore, client: NicepayClient) -> PaymentService:
    # Notifications are dropped and no browser returns: NICEPAY never uses these URLs.
    return PaymentService(
        engine, client, store=store, notification_url="/notify", callback_url="/back"
    )


@contextmanager
def open_shop(store: SqlStore, nicepay: Nicepay, start: datetime) -> Iterator[Shop]:
    clock = ManualClock(start)
    engine = Engine(store, flows=FLOWS, clock=clock)

    def stop(_request: httpx.Request) -> httpx.Response:
        raise ProcessStopped

    with (
        httpx.Client(timeout=httpx.Timeout(10.0)) as http,
        httpx.Client(transport=httpx.MockTransport(stop), timeout=httpx.Timeout(1.0)) as dead,
    ):
        yield Shop(
            engine,
            shop_service(engine, store, nicepay.client(http, clock)),
            shop_service(engine, store, nicepay.client(dead, clock)),
            nicepay,
        )


def fill(shop: Shop, payments: int, *, cut_short_every: int = 0, lost: int = 0) -> None:
    """Start ``payments`` payments, some left with an inquiry cut short, and lost registrations."""
    for index in range(payments):
        payment_id = shop.pay(index)
        if cut_short_every and index % cut_short_every == 1:
            shop.stop_during_inquiry(payment_id)
        else:
            shop.due.append(payment_id)
    for index in range(lost):
        shop.stop_during_registration(index)


# --- the replicas ------------------------------------------------------------------------------


def run_replicas(
    db_url: str, nicepay: Nicepay, rounds: tuple[datetime, ...], *, lease: timedelta
) -> list[ReplicaReport]:
    """Spawn the replicas, released together before every round; their reports, in order."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(REPLICAS)
    reports: multiprocessing.queues.Queue[ReplicaReport] = context.Queue()
    key = nicepay.config.merchant_key.get_secret_value()
    processes = [
        context.Process(
            target=run_replica,
            args=(
                Replica(n, db_url, nicepay.url, nicepay.config.imid, key, rounds, LIMIT, lease),
                barrier,
                reports,
            ),
            name=f"replica-{n}",
        )
        for n in range(REPLICAS)
    ]
    with running(processes):
        received = sorted(collect(reports, processes), key=lambda report: report.number)
    reports.close()
    assert [p.exitcode for p in processes] == [0] * REPLICAS
    crashes = [report.crash for report in received if report.crash]
    assert not crashes, crashes[0]
    return received


@contextmanager
def running(processes: Sequence[multiprocessing.process.BaseProcess]) -> Iterator[None]:
    """Start the processes for the block; none outlives it, whatever the block raised."""
    for process in processes:
        process.start()
    try:
        yield
    except BaseException:
        for process in processes:
            process.kill()
        raise
    finally:
        for process in processes:
            process.join(timeout=10)


def collect(
    reports: multiprocessing.queues.Queue[Report],
    processes: Sequence[multiprocessing.process.BaseProcess],
    limit: float = HANG_LIMIT,
) -> list[Report]:
    """One report per process, or a failure naming the stuck ones after ``limit`` seconds."""
    watchdog = time.monotonic() + limit
    try:
        return [reports.get(timeout=max(watchdog - time.monotonic(), 0.01)) for _ in processes]
    except queue.Empty:
        stuck = [p.name for p in processes if p.is_alive()]
        pytest.fail(f"no report after {limit} s: deadlock or hang in {stuck}")


def deadline_ids(reports: list[ReplicaReport], round_no: int) -> list[str]:
    return [run.instance_id for r in reports for run in r.rounds[round_no].deadlines]


def repair_ids(reports: list[ReplicaReport], round_no: int) -> list[str]:
    return [repair.instance_id for r in reports for repair in r.rounds[round_no].repairs]


# --- what the round must leave behind ----------------------------------------------------------


def assert_inquired_once_each(shop: Shop, payment_ids: list[str]) -> None:
    """The simulator answered one inquiry per payment, and the shop recorded one per payment."""
    tx_ids = {shop.engine.get(pid).tx_id or "" for pid in payment_ids}
    assert shop.nicepay.calls.served() == Counter(dict.fromkeys(tx_ids, 1))
    for pid in payment_ids:
        answered = [
            i
            for i in shop.service.calls.of_instance(pid)
            if i.call == Call.INQUIRY and i.outcome == "answered"
        ]
        assert len(answered) == 1, (pid, answered)


def assert_as_nicepay_says(shop: Shop, payment_ids: list[str]) -> None:
    for pid in payment_ids:
        payment = shop.engine.get(pid)
        status = shop.nicepay.sim.transaction(payment.tx_id).status
        assert payment.state == AFTER_ANSWER[status], (pid, status, payment.state)


def assert_lost_registrations_failed(shop: Shop) -> None:
    """Failed once with the reason, and never sent again: NICEPAY knows nothing of them."""
    for pid in shop.lost:
        payment = shop.engine.get(pid)
        assert payment.state == "registration_failed"
        failures = [r for r in shop.engine.history(pid) if r.event == "fail_registration"]
        assert [r.payload["error"] for r in failures] == ["AnswerLost"]
        with pytest.raises(KeyError):
            shop.nicepay.sim.transaction(reference_no=payment.reference_no)


def assert_nothing_left(store: SqlStore, after: datetime) -> None:
    """No claim outlives the round, and no call is left without its answer."""
    claimed = select(func.count()).where(INSTANCE_TABLE.c.claimed_by.is_not(None))
    with store.engine.connect() as conn:
        assert conn.execute(claimed).scalar_one() == 0
    assert CallJournal(store, clock=ManualClock(after)).still_open(recorded_before=after) == []


# --- tests -------------------------------------------------------------------------------------


def test_replicas_handle_every_due_payment_once(store: SqlStore, db_url: str) -> None:
    start = datetime.now(UTC)
    moment = start + PAST_EVERY_DEADLINE
    with counted_simulator() as nicepay, open_shop(store, nicepay, start) as shop:
        fill(shop, PAYMENTS, cut_short_every=CUT_SHORT_EVERY, lost=LOST_REGISTRATIONS)
        assert nicepay.calls.served() == Counter()  # the cut-short ones never got there
        reports = run_replicas(db_url, nicepay, (moment,), lease=timedelta(minutes=2))
        logger.info(
            "replicas on %s: %s",
            store.dialect,
            [(len(r.rounds[0].deadlines), len(r.rounds[0].repairs)) for r in reports],
        )

        acted, repaired = deadline_ids(reports, 0), repair_ids(reports, 0)
        assert sum(bool(r.rounds[0].deadlines) for r in reports) >= 2, "the replicas never met"
        assert Counter(acted) == Counter(dict.fromkeys(shop.due, 1))
        assert Counter(repaired) == Counter(dict.fromkeys(shop.cut_short + shop.lost, 1))
        assert all(run.error is None for r in reports for run in r.rounds[0].deadlines)
        assert all(rep.error is None for r in reports for rep in r.rounds[0].repairs)
        assert_inquired_once_each(shop, shop.due + shop.cut_short)
        assert_as_nicepay_says(shop, shop.due + shop.cut_short)
        assert_lost_registrations_failed(shop)
        assert_nothing_left(store, moment)
        audit_store(shop.engine, store)


def test_a_stopped_replicas_claims_hold_until_its_lease_runs_out(
    store: SqlStore, db_url: str
) -> None:
    start = datetime.now(UTC)
    moment = start + PAST_EVERY_DEADLINE
    lease = timedelta(seconds=10)  # shorter than any poll the first round schedules (15 s)
    with counted_simulator() as nicepay, open_shop(store, nicepay, start) as shop:
        fill(shop, 16)
        held = Leases(store).claim_due(moment, owner="stopped-replica", lease=lease, limit=4)
        held_ids = [payment.id for payment in held]
        assert len(held_ids) == 4
        rounds = (moment, moment + lease, moment + lease + timedelta(seconds=1))
        reports = run_replicas(db_url, nicepay, rounds, lease=lease)

        assert sorted(deadline_ids(reports, 0)) == sorted(set(shop.due) - set(held_ids))
        assert deadline_ids(reports, 1) == []  # the stopped replica's lease holds to its end
        assert sorted(deadline_ids(reports, 2)) == sorted(held_ids)
        assert_inquired_once_each(shop, shop.due)
        assert_as_nicepay_says(shop, shop.due)
        assert_nothing_left(store, rounds[-1])
        audit_store(shop.engine, store)


def test_the_reconcile_command_prints_its_repairs_and_deadlines(
    store: SqlStore,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)  # the command reconciles at real time
    with counted_simulator() as nicepay, open_shop(store, nicepay, an_hour_ago) as shop:
        due = shop.pay(2)  # LinkAja, paid at the simulator; its 5 minutes are long gone
        cut_short = shop.pay(6)  # LinkAja, declined there
        shop.stop_during_inquiry(cut_short)
        monkeypatch.setenv("EWALLET_FSM_IMID", nicepay.config.imid)
        monkeypatch.setenv(
            "EWALLET_FSM_MERCHANT_KEY", nicepay.config.merchant_key.get_secret_value()
        )
        capsys.readouterr()
        target = ["--db", db_url, "--nicepay-url", nicepay.url]
        code = main(["reconcile", "--once", *target, "--grace", "60", "--lease", "30"])
        printed = capsys.readouterr().out
        assert code == 0, printed
        rows = [line.split() for line in printed.splitlines()]
        assert ["instance", "abandoned", "call", "was", "now", "outcome"] in rows
        assert [cut_short, "inquiry", "status_check_requested", "failed", "inquired"] in rows
        assert ["instance", "deadline", "event", "was", "now", "error"] in rows
        assert [due, "check_status", "redirected_to_partner", "paid"] in rows
        assert_inquired_once_each(shop, [due, cut_short])
        assert_nothing_left(store, datetime.now(UTC))
