"""The end-to-end rig: the demo's merchant and simulator on loopback, plus waiting and checking.

:func:`open_rig` wires a fresh store to :func:`adapters.simulator.rig.merchant_rig` with compressed
expiries, and on the way out checks every payment and link it stored: the log replays
consistently and nothing was settled except by a status inquiry right after a check.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from pydantic import SecretStr

from adapters.nicepay.config import InquiryRetry
from adapters.service import LinkOrder, PaymentOrder, PaymentService, Started
from adapters.simulator import (
    BrowserResult,
    CustomerAction,
    Delivery,
    NicepaySimulator,
    ScriptedBrowser,
    SimulatorConfig,
)
from adapters.simulator.rig import DEMO_AMOUNT, IMID, MerchantRig, demo_order, merchant_rig
from adapters.wallets.status_codes import event_for_status
from fsm.definition import Actor
from fsm.engine import Engine
from fsm.flows import FLOWS, Wallet
from fsm.model import Instance, RejectedEvent, TransitionRecord
from fsm.refunds import REQUEST_REFUND
from fsm.replay import Verdict, replay_instance
from fsm.store.sql import SqlStore
from tests.adapters.worked import WorkedHandler

WAIT = 10.0
"""The longest any wait in the suite may take before it fails."""
EXPIRY = timedelta(seconds=1.5)
"""Every wallet's compressed window in the simulator (NICEPAY: 55 s to 24 h)."""
SETTLEMENTS = frozenset({"paid", "failed", "expired", "voided", "refunded"})
CHECK_STATE = "status_check_requested"
CHECK_EVENTS = frozenset({"check_status", "return_from_partner"})
"""The events that enter ``status_check_requested``: a check, or a browser return."""
AMOUNT = DEMO_AMOUNT


def sim_config(**overrides: Any) -> SimulatorConfig:
    """A simulator with a fresh key, compressed expiries and quick reorders."""
    settings: dict[str, Any] = {
        "imid": IMID,
        "merchant_key": SecretStr(secrets.token_hex(16)),
        "expiry": dict.fromkeys(("ovo", "dana", "linkaja", "shopeepay", "astrapay"), EXPIRY),
        "reorder_max_hold": 3.0,
        "timeout_hold": 5.0,
    }
    settings.update(overrides)
    return SimulatorConfig.model_validate(settings)


@dataclass
class Rig:
    """One served simulator and merchant, with helpers to play and inspect payments."""

    merchant: MerchantRig
    engine: Engine

    @property
    def service(self) -> PaymentService:
        """The merchant's payment service."""
        return self.merchant.service

    @property
    def sim(self) -> NicepaySimulator:
        """The simulated NICEPAY."""
        return self.merchant.sim

    @property
    def http(self) -> httpx.Client:
        """The customer's browser client."""
        return self.merchant.http

    def ref(self, name: str) -> str:
        """A referenceNo unique to this rig."""
        return f"E2E-{self.merchant.run}-{name}"

    def order(self, name: str, wallet: str, *, link_id: str | None = None) -> PaymentOrder:
        """A 150000 IDR order (a shirt and shipping) under :meth:`ref`."""
        return demo_order(self.ref(name), Wallet(wallet), link_id=link_id)

    def start(
        self,
        name: str,
        wallet: str,
        action: CustomerAction = CustomerAction.PAY,
        *,
        link_id: str | None = None,
    ) -> Started:
        """Script the customer, then register the payment (the browser has not moved yet)."""
        order = self.order(name, wallet, link_id=link_id)
        self.sim.script_customer(reference_no=order.reference_no, action=action)
        return self.service.start_payment(order, payment_id=f"pay-{self.merchant.run}-{name}")

    def browse(self, started: Started) -> BrowserResult:
        """The customer's browser takes the step (app link first, as on a phone)."""
        browser = ScriptedBrowser(self.http, prefer="app", poll_interval=0.05, max_wait=WAIT)
        step = started.step
        if step.kind == "form":
            return browser.submit(step.url, step.fields)
        return browser.open(step.app_url or step.url)

    def link(self, name: str) -> Instance:
        """Link an AstraPay account and wait until the link is decided."""
        order = LinkOrder(
            reference_no=self.ref(f"lnk-{name}"),
            billing_name="Siti Rahayu",
            billing_phone="081234567891",
            billing_email="siti@example.co.id",
            user_ip="127.0.0.1",
        )
        self.sim.script_customer(reference_no=order.reference_no, action=CustomerAction.PAY)
        started = self.service.start_link(order, link_id=f"lnk-{self.merchant.run}-{name}")
        self.browse(started)
        self.deliveries(order.reference_no, 1)  # recorded once the merchant has answered
        return self.engine.get(started.instance.id)

    def wait_sim(self, reference_no: str, *states: str, timeout: float = WAIT) -> str:
        """Poll the simulator until the transaction is in one of ``states`` (its expiry too)."""
        deadline = time.monotonic() + timeout
        state = self.sim.transaction(reference_no=reference_no).state
        while state not in states:
            if time.monotonic() > deadline:
                raise AssertionError(f"simulator: {reference_no} stuck in {state!r}")
            time.sleep(0.02)
            state = self.sim.transaction(reference_no=reference_no).state
        return state

    def deliveries(self, reference_no: str, count: int, timeout: float = WAIT) -> list[Delivery]:
        """Wait until ``count`` notification attempts for ``reference_no`` are recorded."""
        deadline = time.monotonic() + timeout
        found = self._deliveries(reference_no)
        while len(found) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} of {count} deliveries for {reference_no}")
            self.sim.wait_for_deliveries(len(self.sim.deliveries) + 1, timeout=0.05)
            found = self._deliveries(reference_no)
        return found

    def _deliveries(self, reference_no: str) -> list[Delivery]:
        return [d for d in self.sim.deliveries if d.reference_no == reference_no]

    def history(self, instance_id: str) -> list[TransitionRecord]:
        """The applied transitions."""
        return self.engine.history(instance_id)

    def rejections(self, instance_id: str) -> list[RejectedEvent]:
        """The refused events."""
        return self.engine.rejections(instance_id)

    def events(self, instance_id: str) -> list[tuple[str, str, str]]:
        """``(event, destination, actor)`` of every applied transition."""
        return [(r.event, r.dest, str(r.actor)) for r in self.history(instance_id)]

    def settlements(self, instance_id: str) -> list[TransitionRecord]:
        """The transitions into a settlement state."""
        return [r for r in self.history(instance_id) if r.dest in SETTLEMENTS]

    def check(self, instance_id: str, actor: Actor = Actor.TIMER) -> Instance:
        """A later status check, as the state's deadline would run it."""
        return self.service.check_status(instance_id, actor=actor)


def assert_settled_by_inquiry(engine: Engine, instance_id: str) -> None:
    """Every settlement came from a status inquiry whose code maps to it, right after a check."""
    instance = engine.get(instance_id)
    flow = engine.flow(instance.flow)
    history = engine.history(instance_id)
    for index, record in enumerate(history):
        if not flow.state(record.dest).settlement or record.event == REQUEST_REFUND:
            continue  # a refund request stays where it is: it settles nothing
        assert record.dest in SETTLEMENTS, record
        assert record.actor == Actor.STATUS_INQUIRY, (instance_id, record)
        status = str(record.payload.get("status"))
        mapped = event_for_status(instance.wallet or "", status, current_state=record.source)
        assert mapped == record.event, (instance_id, status, record)
        if flow.state(record.source).kind.settled:
            continue  # a reversal of a settled payment (not played in this suite)
        assert record.source == CHECK_STATE, (instance_id, record)
        assert index > 0, (instance_id, record)
        assert history[index - 1].event in CHECK_EVENTS, (instance_id, history[index - 1])


def assert_replays(engine: Engine, instance: Instance) -> None:
    """The stored log replays through the flow to the stored row."""
    result = replay_instance(engine.flow(instance.flow), instance, engine.history(instance.id))
    assert result.verdict is Verdict.CONSISTENT, (instance.id, result.divergence)
    assert result.state == instance.state


def audit_store(engine: Engine, store: SqlStore) -> list[Instance]:
    """Check every payment and link stored in ``store``, through ``engine``; returns them."""
    instances = store.list_instances()
    for instance in instances:
        assert_replays(engine, instance)
        assert_settled_by_inquiry(engine, instance.id)
    return instances


@contextmanager
def open_rig(
    db_url: str,
    config: SimulatorConfig | None = None,
    *,
    api_timeout: httpx.Timeout | None = None,
    inquiry_retry: InquiryRetry | None = None,
) -> Iterator[Rig]:
    """A rig on a fresh schema at ``db_url``; every instance it stored is audited at the end."""
    store = SqlStore(db_url)
    store.create_schema()
    engine = Engine(store, flows=FLOWS)
    try:
        with merchant_rig(
            engine,
            store,
            config or sim_config(),
            api_timeout=api_timeout,
            inquiry_retry=inquiry_retry or InquiryRetry(attempts=3, base_delay=0.02, max_delay=0.1),
            status_worker=False,
        ) as merchant:
            # Each request's status check has run by the time it is answered, so a delivery or
            # a return the simulator has seen answered has had its whole effect.
            merchant.app.handler = WorkedHandler(merchant.service)
            rig = Rig(merchant, engine)
            yield rig
        audit_store(engine, store)
    finally:
        store.dispose()
