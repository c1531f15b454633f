"""Settle: from NICEPAY's notification to a paid payment, over HTTP, with the status worker apart.

Each round registers fresh DANA payments at the loopback simulator (its own notifications are
dropped), marks them paid there, and then, timed, posts one signed notification per payment from
several client threads to the merchant's ``NotificationApp`` and waits until every payment is
``paid``. The endpoint only records the notification and asks for a status check; a
:class:`~adapters.reconcile.worker.StatusWorker` asks NICEPAY and applies the answer:

- in another process: ``ewallet-fsm relay --status-checks --loop``, on the same SQLite file;
- in the serving process, in a thread of its own (what ``ewallet-fsm serve`` does).

The floor settles the same kind of payments without any notification: the service's own
``check_status`` from as many threads. Each variant has a database file of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
from sqlalchemy import func, select

from adapters.inbound.asgi import CALLBACK_PATH, NOTIFICATION_PATH, NotificationApp
from adapters.inbound.handler import NotificationHandler
from adapters.nicepay.client import NicepayClient
from adapters.nicepay.config import InquiryRetry, NicepayCredentials
from adapters.reconcile.worker import StatusWorker
from adapters.service import PaymentService
from adapters.simulator import NicepaySimulator, SimulatorConfig, serve_app
from adapters.simulator.rig import demo_order
from fsm.engine import Engine
from fsm.flows import FLOWS, Wallet
from fsm.model import Instance
from fsm.store.sql import SqlStore
from fsm.store.tables import INSTANCE_TABLE
from perf.burst import IMID, notification, simulator_config
from perf.harness import Comparison, Variant
from perf.settings import Settings

SETTLE_LIMIT = 120.0
"""Seconds a batch may take to settle before the run is called broken."""
_COMMAND = [sys.executable, "-c", "from adapters.cli import main; raise SystemExit(main())"]


class Merchant:
    """One merchant database with its service and, when served, its notification endpoint."""

    def __init__(
        self, name: str, path: Path, sim: NicepaySimulator, config: SimulatorConfig
    ) -> None:
        self.name = name
        self.url = f"sqlite:///{path}"
        self.store = SqlStore(self.url)
        self.store.create_schema()
        self.http = httpx.Client(timeout=httpx.Timeout(10.0))
        credentials = NicepayCredentials(
            imid=IMID, merchant_key=config.merchant_key, base_url=sim.nicepay_url
        )
        engine = Engine(self.store, flows=FLOWS)
        retry = InquiryRetry(attempts=3, base_delay=0.05, max_delay=0.2)
        client = NicepayClient(self.http, credentials, clock=engine.clock, inquiry_retry=retry)
        self.app = NotificationApp()
        self.endpoint = ""
        self.service = PaymentService(
            engine, client, store=self.store, notification_url="", callback_url=""
        )
        self.app.handler = NotificationHandler(self.service)
        self.sim = sim
        self.registered = 0

    def paid_at_nicepay(self, count: int) -> list[Instance]:
        """``count`` fresh payments NICEPAY holds as paid, its own notifications dropped."""
        payments = []
        for _ in range(count):
            self.registered += 1
            order = demo_order(f"SETTLE-{self.name}-{self.registered:05d}", Wallet.DANA)
            self.sim.faults.notification(order.reference_no, drop=True, times=None)
            payment = self.service.start_payment(order).instance
            self.sim.approve(payment.tx_id or "")
            payments.append(payment)
        return payments

    def paid(self, payments: list[Instance]) -> int:
        """How many of ``payments`` are paid now."""
        query = select(func.count()).where(
            INSTANCE_TABLE.c.id.in_([p.id for p in payments]), INSTANCE_TABLE.c.state == "paid"
        )
        with self.store.connection() as conn:
            return int(conn.execute(query).scalar_one())

    def close(self) -> None:
        self.http.close()
        self.store.dispose()


@contextmanager
def relay_process(merchant: Merchant, config: SimulatorConfig) -> Iterator[None]:
    """``ewallet-fsm relay --status-checks --loop`` on the merchant's database."""
    env = {
        **os.environ,
        "EWALLET_FSM_IMID": IMID,
        "EWALLET_FSM_MERCHANT_KEY": config.merchant_key.get_secret_value(),
        "EWALLET_FSM_NICEPAY_URL": merchant.sim.nicepay_url,
    }
    command = [*_COMMAND, "relay", "--status-checks", "--loop", "--sink", "log"]
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [*command, "--db", merchant.url],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


def settle_batch(
    merchant: Merchant, clients: list[httpx.Client], pool: ThreadPoolExecutor
) -> Callable[[int], float]:
    """Post a notification per fresh paid payment and wait until all are paid; the seconds."""
    config = merchant.sim.config

    def run(size: int) -> float:
        payments = merchant.paid_at_nicepay(size)
        bodies = [notification(config, payment, 1) for payment in payments]

        def post(number: int) -> int:
            client = clients[number % len(clients)]
            url = merchant.endpoint + NOTIFICATION_PATH
            return client.post(url, data=bodies[number]).status_code

        start = time.perf_counter()
        codes = list(pool.map(post, range(size), chunksize=1))
        _wait_paid(merchant, payments, start)
        elapsed = time.perf_counter() - start
        if set(codes) != {200}:
            raise AssertionError(f"notifications answered {sorted(set(codes))}")
        return elapsed

    return run


def inquiry_batch(merchant: Merchant, pool: ThreadPoolExecutor) -> Callable[[int], float]:
    """The floor: each fresh paid payment settled by the service's own status check."""

    def run(size: int) -> float:
        payments = merchant.paid_at_nicepay(size)
        start = time.perf_counter()
        list(pool.map(lambda p: merchant.service.check_status(p.id), payments))
        _wait_paid(merchant, payments, start)
        return time.perf_counter() - start

    return run


def _wait_paid(merchant: Merchant, payments: list[Instance], start: float) -> None:
    while merchant.paid(payments) < len(payments):
        if time.perf_counter() - start > SETTLE_LIMIT:
            raise AssertionError(f"payments not paid within {SETTLE_LIMIT} s")
        time.sleep(0.005)


def comparison(config: Settings, stack: ExitStack) -> Comparison:
    """Notification to paid, worker in another process and in the server, against the check."""
    sim_config = simulator_config(config, "settle")
    sim = stack.enter_context(NicepaySimulator(sim_config).serve())
    merchants = {}
    for name in ("floor", "apart", "inside"):
        merchant = Merchant(name, config.workdir / f"settle-{name}.sqlite3", sim, sim_config)
        stack.callback(merchant.close)
        merchant.endpoint = stack.enter_context(serve_app(merchant.app))
        merchant.service.callback_url = merchant.endpoint + CALLBACK_PATH
        merchant.service.notification_url = merchant.endpoint + NOTIFICATION_PATH
        merchants[name] = merchant
    stack.enter_context(relay_process(merchants["apart"], sim_config))
    stack.enter_context(StatusWorker(merchants["inside"].service).running())
    clients = [
        stack.enter_context(httpx.Client(timeout=httpx.Timeout(30.0)))
        for _ in range(config.burst_clients)
    ]
    pool = stack.enter_context(ThreadPoolExecutor(config.burst_clients))
    apart = "notification, worker in another process"
    return Comparison(
        name="settle",
        title=f"notification to paid over HTTP, {config.burst_clients} clients (per payment)",
        floor="status check only",
        variants=(
            Variant(
                "status check only", inquiry_batch(merchants["floor"], pool), "no notification"
            ),
            Variant(
                apart, settle_batch(merchants["apart"], clients, pool), "relay --status-checks"
            ),
            Variant(
                "notification, worker in the server",
                settle_batch(merchants["inside"], clients, pool),
                "a worker thread, as serve runs it",
            ),
        ),
        ops=config.settle_payments,
        rounds=config.burst_rounds,
        notes=["simulator, server and clients share one process; workers poll every 0.2 s"],
    )
