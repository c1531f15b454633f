"""NICEPAY in-process: the simulator behind its ``MockTransport``, and the rigs built on it.

There is one NICEPAY fake, the simulator. Here it runs without a socket on the tests' manual clock,
with the credentials of :mod:`tests.adapters.values`, and with nothing expiring by itself. An
answer NICEPAY would not give of its own accord (a result code, a garbled body, a status no table
knows, a lost answer) is armed with ``sim.faults.response``; what the customer or the wallet does
is done to the simulator (``sim.approve``, a browser on its pages). Notifications it sends are
acknowledged by a stand-in merchant and kept in ``sim.deliveries``: a test hands the ones it wants
to the handler itself.

Between the merchant and NICEPAY runs a :class:`Line` that records what the merchant sent and lets
a test act while a call is on its way (a process that stops, a clock that moves).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx

from adapters.nicepay.client import INQUIRY_PATH, NicepayClient
from adapters.nicepay.config import InquiryRetry, NicepayCredentials
from adapters.service import PaymentService, Started
from adapters.simulator import CustomerAction, NicepaySimulator, ScriptedBrowser, SimulatorConfig
from adapters.wallets.base import CustomerStep
from fsm.clock import ManualClock
from fsm.definition import Actor, FlowCatalog
from fsm.engine import Engine
from fsm.events import EventTypes
from fsm.flows import FLOWS, Wallet
from fsm.model import Instance
from fsm.store.sql import SqlStore
from tests.adapters.values import (
    CALLBACK_URL,
    CREDENTIALS,
    IMID,
    KEY_TEXT,
    NOTIFY_URL,
    ORIGIN,
    START,
    link_order,
)

NEVER = timedelta(days=3650)
"""Every wallet's expiry window at the simulator: only a test expires a transaction."""

Forward = Callable[[httpx.Request], httpx.Response]
Hook = Callable[[httpx.Request, Forward], httpx.Response]
"""Runs while a call is on its way: gets the request and NICEPAY, returns (or raises) the answer."""


def sim_config(clock: ManualClock) -> SimulatorConfig:
    """The simulator the tests' merchant talks to: the tests' credentials and ``clock``."""
    return SimulatorConfig(
        imid=IMID,
        merchant_key=KEY_TEXT,
        clock=clock,
        expiry=dict.fromkeys(Wallet, NEVER),
        sweep_interval=3600.0,  # nothing expires by itself: no sweeper passes needed
    )


class Line(httpx.BaseTransport):
    """The merchant's line to NICEPAY: records every request, runs the hooks armed for a path."""

    def __init__(self, nicepay: httpx.BaseTransport) -> None:
        """A line to ``nicepay``."""
        self._nicepay = nicepay
        self._hooks: dict[str, list[Hook]] = {}
        self.requests: list[httpx.Request] = []
        """Every request sent, in order (its answer may have been lost)."""

    def intercept(self, path: str, hook: Hook) -> None:
        """Let ``hook`` carry the next call to ``path`` (e.g. ``/direct/v2/inquiry``)."""
        self._hooks.setdefault(path, []).append(hook)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Record ``request``, then hand it to its hook or straight to NICEPAY."""
        request.read()
        self.requests.append(request)
        hooks = self._hooks.get(_route(request))
        if hooks:
            return hooks.pop(0)(request, self._nicepay.handle_request)
        return self._nicepay.handle_request(request)

    def sent(self, path: str) -> list[httpx.Request]:
        """The requests sent to ``path``, in order."""
        return [request for request in self.requests if _route(request) == path]

    def bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies of every request sent."""
        return [json.loads(request.content) for request in self.requests]


def _route(request: httpx.Request) -> str:
    return request.url.path.removeprefix("/nicepay")


def _merchant_acknowledges(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, text="OK")


@dataclass
class Nicepay:
    """An open simulator on a manual clock, reached in-process."""

    sim: NicepaySimulator
    clock: ManualClock

    def line(self) -> Line:
        """A new line from a merchant process to this NICEPAY."""
        return Line(self.sim.mock_transport())

    def browser(self) -> httpx.Client:
        """A customer's browser: NICEPAY's pages in-process, the merchant's pages acknowledged."""
        return httpx.Client(
            transport=httpx.MockTransport(_merchant_acknowledges),
            mounts={ORIGIN: self.sim.mock_transport()},
            timeout=httpx.Timeout(5.0),
        )


def new_simulator(clock: ManualClock) -> NicepaySimulator:
    """The tests' simulator on ``clock``, its notifications acknowledged in-process."""
    return NicepaySimulator(
        sim_config(clock), notification_transport=httpx.MockTransport(_merchant_acknowledges)
    )


@contextmanager
def open_nicepay(clock: ManualClock | None = None) -> Iterator[Nicepay]:
    """The simulator, open for a block, on ``clock`` (a new one at :data:`START` by default)."""
    clock = clock or ManualClock(START)
    sim = new_simulator(clock)
    sim.open()
    try:
        yield Nicepay(sim, clock)
    finally:
        sim.close()


# --- a client on NICEPAY ----------------------------------------------------------------------


@dataclass
class Harness:
    """A client on the simulator whose sleeps are recorded and move the clock."""

    sim: NicepaySimulator
    line: Line
    clock: ManualClock
    client: NicepayClient
    sleeps: list[float]


def harness(
    nicepay: Nicepay,
    *,
    retry: InquiryRetry | None = None,
    credentials: NicepayCredentials = CREDENTIALS,
) -> Harness:
    """A client on ``nicepay``: inquiries tried 3 times, 1 s apart, doubling to at most 4 s."""
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        nicepay.clock.advance(timedelta(seconds=seconds))

    line = nicepay.line()
    http = httpx.Client(transport=line, timeout=httpx.Timeout(5.0))
    retry = retry or InquiryRetry(attempts=3, base_delay=1.0, max_delay=4.0)
    client = NicepayClient(http, credentials, clock=nicepay.clock, inquiry_retry=retry, sleep=sleep)
    return Harness(nicepay.sim, line, nicepay.clock, client, sleeps)


# --- a payment service on NICEPAY -------------------------------------------------------------


@dataclass
class ServiceRig:
    """A PaymentService over a real engine and store, its client on the simulator."""

    sim: NicepaySimulator
    line: Line
    clock: ManualClock
    engine: Engine
    client: NicepayClient
    service: PaymentService
    browser: httpx.Client = field(repr=False)
    """The customer's browser."""

    def tx_id(self, reference_no: str) -> str:
        """The tXid NICEPAY holds for ``reference_no``."""
        return self.sim.transaction(reference_no=reference_no).tx_id


def service_rig(
    store: SqlStore,
    nicepay: Nicepay,
    *,
    event_types: EventTypes | None = None,
    flows: FlowCatalog = FLOWS,
) -> ServiceRig:
    """A service on ``store`` and ``nicepay``'s clock; inquiries try twice, no wait."""
    line = nicepay.line()
    http = httpx.Client(transport=line, timeout=httpx.Timeout(5.0))
    client = NicepayClient(
        http,
        CREDENTIALS,
        clock=nicepay.clock,
        inquiry_retry=InquiryRetry(attempts=2, base_delay=0.0, max_delay=0.0),
        sleep=lambda _seconds: None,
    )
    engine = Engine(store, flows=flows, clock=nicepay.clock, event_types=event_types)
    service = PaymentService(
        engine,
        client,
        store=store,
        notification_url=NOTIFY_URL,
        callback_url=CALLBACK_URL,
        reference_suffix=lambda: "R1",
    )
    return ServiceRig(nicepay.sim, line, nicepay.clock, engine, client, service, nicepay.browser())


def logged_events(rig: ServiceRig, instance_id: str) -> list[tuple[str, str]]:
    """The applied steps of an instance as (event, actor)."""
    return [(record.event, record.actor) for record in rig.engine.history(instance_id)]


def inquiries_sent(rig: ServiceRig) -> int:
    """How many inquiries the service sent to NICEPAY."""
    return len(rig.line.sent(INQUIRY_PATH))


def inquiry_answers(rig: ServiceRig, status: str | None, *, times: int | None = 1) -> None:
    """NICEPAY's next ``times`` inquiries (``None``: all from now on) answer ``status``.

    For codes the simulator's own lifecycle never reports (and for ``None``, a JSON null).
    """
    rig.sim.faults.response(INQUIRY_PATH, fields={"status": status}, times=times)


def open_page(rig: ServiceRig, payment: Instance) -> None:
    """The customer's browser opens the payment page: NICEPAY reports status 3 (OVO: 4)."""
    step = rig.client.payment_step(
        payment.tx_id or "", payment.reference_no or "", payment.amount or "", CALLBACK_URL
    )
    assert rig.browser.get(step.get_url).is_redirect


def link_at_nicepay(rig: ServiceRig, started: Started) -> str:
    """The customer links the account on AstraPay's pages; returns the mandate NICEPAY granted."""
    browser = ScriptedBrowser(rig.browser, action=CustomerAction.PAY, max_wait=5.0)
    browser.submit(started.step.url, started.step.fields)
    reference_no = started.step.fields["referenceNo"]
    mandate = rig.sim.mandate_of(reference_no)
    assert mandate is not None, f"NICEPAY did not link {reference_no}"
    return mandate


def linked_account(rig: ServiceRig, reference_no: str = "LNK-1") -> Instance:
    """An AstraPay account linked at NICEPAY, its mandate confirmed by an operator."""
    started = rig.service.start_link(link_order(reference_no))
    mandate = link_at_nicepay(rig, started)
    rig.engine.fire(
        started.instance.id,
        "confirm_link",
        actor=Actor.OPERATOR,
        idempotency_key="op",
        payload={"mandate": mandate},
    )
    return rig.engine.get(started.instance.id)


def submit_at_nicepay(rig: ServiceRig, started: Started | CustomerStep) -> str:
    """The browser submits an AstraPay payment's form (status 3 at NICEPAY); returns its tXid."""
    step = started.step if isinstance(started, Started) else started
    answered = rig.browser.post(step.url, data=step.fields)
    assert answered.is_redirect, answered.text
    return rig.tx_id(step.fields["referenceNo"])


def delivered(rig: ServiceRig, kind: str, reference_no: str) -> dict[str, str]:
    """The fields of NICEPAY's first ``kind`` notification about ``reference_no`` (waits for it).

    ``kind`` is ``payment``, ``reversal``, ``link`` or ``manual``.
    """
    for _ in range(50):
        for delivery in rig.sim.wait_for_deliveries(len(rig.sim.deliveries) + 1, timeout=0.1):
            if (delivery.kind, delivery.reference_no) == (kind, reference_no):
                return dict(delivery.fields)
    raise AssertionError(f"NICEPAY sent no {kind} notification about {reference_no}")
