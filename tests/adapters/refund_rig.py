"""A merchant on a loopback simulator for the refund tests, with NICEPAY's calls counted there.

The simulator and the merchant's engine share one manual clock, so a test can put the payment
and its refund on any WIB day and hour. Notifications are dropped: only the merchant's own calls
(registration, inquiry, cancel) move anything, and the simulator counts the requests it serves
per path and tXid, refused ones included.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from adapters.client import CANCEL_PATH, InquiryRetry, NicepayClient
from adapters.config import NicepayCredentials
from adapters.demo import demo_order
from adapters.service import PaymentService
from adapters.simulator import NicepaySimulator, SimulatorConfig, serve_app
from fsm.clock import ManualClock
from fsm.engine import Engine
from fsm.flows import Wallet
from fsm.model import Instance
from fsm.persistence import SqlStore
from tests.adapters.e2e_rig import audit_store, sim_config

NOON_WIB = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)
"""12:00 in Jakarta: outside DANA's blackout, and far from the WIB day's end."""
UNUSED_URL = "http://127.0.0.1:9/unused"
"""Where NICEPAY would notify: every notification is dropped, so nothing is ever sent there."""


class CallCounter:
    """The simulator's ASGI app, counting per tXid the requests to one path it has served."""

    def __init__(self, app: Any, path: str) -> None:
        self._app = app
        self._path = path
        self._lock = threading.Lock()
        self._served: Counter[str] = Counter()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith(self._path):
            await self._app(scope, receive, send)
            return
        body = bytearray()

        async def receive_and_keep() -> dict[str, Any]:
            message: dict[str, Any] = await receive()
            body.extend(message.get("body", b""))
            return message

        await self._app(scope, receive_and_keep, send)
        tx_id = str(json.loads(body or b"{}").get("tXid", ""))
        with self._lock:
            self._served[tx_id] += 1

    def served(self) -> Counter[str]:
        """Requests answered so far, per tXid."""
        with self._lock:
            return Counter(self._served)


@dataclass(frozen=True)
class Nicepay:
    """The served simulator, its cancel counter, and what a merchant needs to reach it."""

    sim: NicepaySimulator
    cancels: CallCounter
    url: str
    config: SimulatorConfig

    def client(self, http: httpx.Client, clock: ManualClock) -> NicepayClient:
        """A NICEPAY client for a merchant process."""
        credentials = NicepayCredentials(
            imid=self.config.imid, merchant_key=self.config.merchant_key, base_url=self.url
        )
        retry = InquiryRetry(attempts=3, base_delay=0.02, max_delay=0.1)
        return NicepayClient(http, credentials, clock=clock, inquiry_retry=retry)


@contextmanager
def counted_simulator(clock: ManualClock, **overrides: Any) -> Iterator[Nicepay]:
    """A simulator on ``clock``, served on loopback behind a :class:`CallCounter` of cancels."""
    config = sim_config(clock=clock, **overrides)
    sim = NicepaySimulator(config)
    counter = CallCounter(sim.app, CANCEL_PATH)
    sim.open()
    try:
        with serve_app(counter) as base_url:
            yield Nicepay(sim, counter, base_url + "/nicepay", config)
    finally:
        sim.close()


def merchant(engine: Engine, client: NicepayClient) -> PaymentService:
    """A payment service whose notification and callback URLs NICEPAY never uses."""
    return PaymentService(engine, client, notification_url=UNUSED_URL, callback_url=UNUSED_URL)


@dataclass
class RefundRig:
    """One merchant and the simulator, on one clock."""

    engine: Engine
    service: PaymentService
    nicepay: Nicepay
    clock: ManualClock
    run: str

    @property
    def sim(self) -> NicepaySimulator:
        """The simulated NICEPAY."""
        return self.nicepay.sim

    def paid(self, name: str, wallet: Wallet = Wallet.SHOPEEPAY) -> Instance:
        """A 150000 IDR payment its customer paid now, as an inquiry told the merchant."""
        reference_no = f"RF-{self.run}-{name}"
        self.sim.faults.notification(reference_no, drop=True, times=None)
        order = demo_order(reference_no, wallet)
        started = self.service.start_payment(order, payment_id=f"rf-{self.run}-{name}")
        assert self.sim.approve(started.instance.tx_id or "")
        payment = self.service.check_status(started.instance.id)
        assert payment.state == "paid", payment
        return payment

    def cancels_sent(self, payment: Instance) -> int:
        """Cancel requests the simulator served for the payment, refused ones included."""
        return self.nicepay.cancels.served()[payment.tx_id or ""]

    def refunded_at_nicepay(self, payment: Instance) -> str:
        """NICEPAY's ``cancelAmt`` for the payment."""
        return self.sim.transaction(payment.tx_id).cancel_amt


@contextmanager
def refund_rig(
    db_url: str, *, start: datetime = NOON_WIB, store: SqlStore | None = None, **overrides: Any
) -> Iterator[RefundRig]:
    """A fresh schema at ``db_url`` (or ``store``), the simulator and a merchant on one clock.

    Every payment it stored is audited at the end: its log replays, and nothing but an inquiry
    settled it.
    """
    store = store or SqlStore(db_url)
    store.create_schema()
    clock = ManualClock(start)
    engine = Engine(store, clock=clock)
    try:
        with (
            counted_simulator(clock, **overrides) as nicepay,
            httpx.Client(timeout=httpx.Timeout(10.0)) as http,
        ):
            service = merchant(engine, nicepay.client(http, clock))
            yield RefundRig(engine, service, nicepay, clock, secrets.token_hex(3))
        audit_store(engine)
    finally:
        store.dispose()
