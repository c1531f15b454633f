"""A merchant on a loopback simulator for the refund tests, with NICEPAY's calls counted there.

The simulator and the merchant's engine share one manual clock, so a test can put the payment
and its refund on any WIB day and hour. Notifications are dropped: only the merchant's own calls
(registration, inquiry, cancel) move anything, and the simulator counts the cancels it serves per
tXid, refused ones included.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from adapters.nicepay.client import CANCEL_PATH, NicepayClient
from adapters.service import PaymentService
from adapters.simulator import NicepaySimulator
from adapters.simulator.rig import demo_order
from fsm.clock import ManualClock
from fsm.engine import Engine
from fsm.flows import FLOWS, Wallet
from fsm.model import Instance
from fsm.store.sql import SqlStore
from tests.adapters.counted_nicepay import Gate, Nicepay, counted_simulator
from tests.adapters.e2e_rig import audit_store, sim_config

NOON_WIB = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)
"""12:00 in Jakarta: outside DANA's blackout, and far from the WIB day's end."""
UNUSED_URL = "http://127.0.0.1:9/unused"
"""Where NICEPAY would notify: every notification is dropped, so nothing is ever sent there."""


def merchant(engine: Engine, store: SqlStore, client: NicepayClient) -> PaymentService:
    """A payment service whose notification and callback URLs NICEPAY never uses."""
    return PaymentService(
        engine, client, store=store, notification_url=UNUSED_URL, callback_url=UNUSED_URL
    )


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
        return self.nicepay.calls.served()[payment.tx_id or ""]

    def refunded_at_nicepay(self, payment: Instance) -> str:
        """NICEPAY's ``cancelAmt`` for the payment."""
        return self.sim.transaction(payment.tx_id).cancel_amt


@contextmanager
def refund_rig(
    db_url: str,
    *,
    start: datetime = NOON_WIB,
    store: SqlStore | None = None,
    gates: Sequence[Gate] = (),
    **overrides: Any,
) -> Iterator[RefundRig]:
    """A fresh schema at ``db_url`` (or ``store``), the simulator (behind ``gates``) and a
    merchant on one clock.

    Every payment it stored is audited at the end: its log replays, and nothing but an inquiry
    settled it.
    """
    store = store or SqlStore(db_url)
    store.create_schema()
    clock = ManualClock(start)
    engine = Engine(store, flows=FLOWS, clock=clock)
    try:
        with (
            counted_simulator(sim_config(clock=clock, **overrides), CANCEL_PATH, gates) as nicepay,
            httpx.Client(timeout=httpx.Timeout(10.0)) as http,
        ):
            service = merchant(engine, store, nicepay.client(http, clock))
            yield RefundRig(engine, service, nicepay, clock, secrets.token_hex(3))
        audit_store(engine, store)
    finally:
        store.dispose()
