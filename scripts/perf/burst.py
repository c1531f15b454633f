"""Burst: signed notifications posted at once to the HTTP notification endpoint, end to end.

The rig is the demo's: the loopback NICEPAY simulator, ``NotificationApp`` served with
``serve_app``, a ``NotificationHandler`` over a ``PaymentService`` whose engine stores in a SQLite
file (synchronous=FULL, the default). DANA payments are registered at the simulator first; a burst
then sends one correctly signed notification per payment from several client threads at once.
Each notification is verified, recorded (``receive_notification``) and journalled with the
status check it asks for, in one commit, and no call to NICEPAY, which a status worker makes
later (the ``settle`` comparison measures that; none runs here). The floor is the same server
answering 200 without doing anything. Everything, the simulator and the clients included,
shares this one process, so the numbers are a lower bound.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import httpx
from pydantic import SecretStr
from sqlalchemy import func, select

from adapters.inbound.asgi import CALLBACK_PATH, NOTIFICATION_PATH, NotificationApp, Reply
from adapters.inbound.handler import OK, NotificationHandler
from adapters.inbound.parsing import InboundRequest
from adapters.nicepay.client import NicepayClient
from adapters.nicepay.config import InquiryRetry, NicepayCredentials
from adapters.nicepay.tokens import notification_token
from adapters.service import PaymentService
from adapters.simulator import NicepaySimulator, SimulatorConfig, serve_app
from adapters.simulator.rig import demo_order
from fsm.engine import Engine
from fsm.flows import FLOWS, Wallet
from fsm.model import Instance
from fsm.store.sql import SqlStore
from fsm.store.tables import TransitionLogRow
from perf.harness import Comparison, Target, Variant
from perf.settings import Settings

IMID = "IONPAYTEST"
BURST_RATE = 0.6
"""The issue's goal: the endpoint's rate at least this share of the empty endpoint's."""


class _Nothing:
    """The floor's handler: answers every request with success and does nothing."""

    def handle_notification(self, request: InboundRequest) -> Reply:
        return OK

    def handle_callback(self, request: InboundRequest) -> Reply:
        return OK

    def handle_oversized(self, endpoint: str, request: InboundRequest, limit: int) -> Reply:
        return Reply(413, {"error": "body_too_large"})

    def handle_stalled(self, endpoint: str, request: InboundRequest, seconds: float) -> Reply:
        return Reply(408, {"error": "body_timeout"})


@dataclass
class Rig:
    """The served simulator and merchant app, and the payments registered there."""

    config: SimulatorConfig
    store: SqlStore
    merchant_url: str
    floor_url: str
    payments: list[Instance]


@contextmanager
def rig(config: Settings) -> Iterator[Rig]:
    """Serve the simulator, the merchant's app and the floor app; register the payments."""
    sim_config = simulator_config(config, "burst")
    store = SqlStore(f"sqlite:///{config.workdir / 'burst-merchant.sqlite3'}")
    store.create_schema()
    engine, app = Engine(store, flows=FLOWS), NotificationApp()
    with (
        NicepaySimulator(sim_config).serve() as sim,
        serve_app(app) as merchant_url,
        serve_app(NotificationApp(_Nothing())) as floor_url,
        httpx.Client(timeout=httpx.Timeout(10.0)) as api_http,
    ):
        credentials = NicepayCredentials(
            imid=IMID, merchant_key=sim_config.merchant_key, base_url=sim.nicepay_url
        )
        client = NicepayClient(
            api_http,
            credentials,
            clock=engine.clock,
            inquiry_retry=InquiryRetry(attempts=3, base_delay=0.05, max_delay=0.2),
        )
        service = PaymentService(
            engine,
            client,
            store=store,
            notification_url=merchant_url + NOTIFICATION_PATH,
            callback_url=merchant_url + CALLBACK_PATH,
        )
        app.handler = NotificationHandler(service)
        payments = [_register(service, number) for number in range(config.burst_payments)]
        yield Rig(sim_config, store, merchant_url, floor_url, payments)
    store.dispose()


def simulator_config(config: Settings, name: str) -> SimulatorConfig:
    """The simulator's settings: a fresh merchant key, its ledger in the run's directory."""
    return SimulatorConfig(
        imid=IMID,
        merchant_key=SecretStr(secrets.token_hex(16)),
        db_url=f"sqlite:///{config.workdir / f'{name}-simulator.sqlite3'}",
    )


def _register(service: PaymentService, number: int) -> Instance:
    order = demo_order(f"BURST-{number:05d}", Wallet.DANA)
    return service.start_payment(order, payment_id=f"burst-{number:05d}").instance


def notification(sim: SimulatorConfig, payment: Instance, burst: int) -> dict[str, str]:
    """A correctly signed payment notification; ``transTm`` makes each burst's copy new."""
    tx_id, amount = payment.tx_id or "", payment.amount or ""
    return {
        "tXid": tx_id,
        "referenceNo": payment.reference_no or "",
        "payMethod": "05",
        "amt": amount,
        "iMid": sim.imid,
        "currency": "IDR",
        "transDt": "20260101",
        "transTm": f"{burst:06d}",
        "status": "0",
        "mitraCd": "DANA",
        "merchantToken": notification_token(sim.imid, tx_id, amount, sim.merchant_key),
    }


def burst_batch(
    setup: Rig, url: str, clients: list[httpx.Client], pool: ThreadPoolExecutor
) -> Callable[[int], float]:
    """Post one notification per payment to ``url``, ``len(clients)`` at a time."""
    bursts = [0]

    def run(size: int) -> float:
        bursts[0] += 1
        bodies = [notification(setup.config, p, bursts[0]) for p in setup.payments[:size]]

        def post(number: int) -> int:
            client = clients[number % len(clients)]
            return client.post(url + NOTIFICATION_PATH, data=bodies[number]).status_code

        start = time.perf_counter()
        codes = list(pool.map(post, range(len(bodies)), chunksize=1))
        elapsed = time.perf_counter() - start
        if set(codes) != {200}:
            raise AssertionError(f"burst answers {sorted(set(codes))}")
        return elapsed

    return run


def log_rows(store: SqlStore) -> int:
    """Transitions stored by the merchant so far."""
    with store.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(TransitionLogRow)) or 0)


def comparison(config: Settings, stack: ExitStack) -> Comparison:
    """The merchant's endpoint against the do-nothing endpoint on the same server."""
    setup = stack.enter_context(rig(config))
    clients = [
        stack.enter_context(httpx.Client(timeout=httpx.Timeout(30.0)))
        for _ in range(config.burst_clients)
    ]
    pool = stack.enter_context(ThreadPoolExecutor(config.burst_clients))
    stored = {"before": log_rows(setup.store)}
    endpoint = "NotificationApp + engine"
    counts: list[int] = []

    def after(name: str) -> None:
        if name == endpoint:
            now = log_rows(setup.store)
            counts.append(now - stored["before"])
            stored["before"] = now

    return Comparison(
        name="burst",
        title=f"notification burst over HTTP, {config.burst_clients} clients (per notification)",
        floor="HTTP only",
        variants=(
            Variant(
                "HTTP only", burst_batch(setup, setup.floor_url, clients, pool), "200, no work"
            ),
            Variant(
                endpoint,
                burst_batch(setup, setup.merchant_url, clients, pool),
                "verify, record, ask for a check",
            ),
        ),
        targets=(
            Target(
                endpoint,
                "HTTP only",
                round(1 / BURST_RATE, 2),
                f"the endpoint answers at least {BURST_RATE} of the empty endpoint's rate",
            ),
        ),
        ops=config.burst_payments,
        rounds=config.burst_rounds,
        notes=["simulator, server and clients share one process; SQLite synchronous=FULL"],
        extra={"transitions_per_burst": counts},
        after_batch=after,
    )
