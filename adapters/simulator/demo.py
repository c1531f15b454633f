"""The main job: every wallet end to end against the loopback simulator, over real HTTP.

The simulator plays NICEPAY and the wallets, a scripted browser plays the customer, and the
merchant side is this library: the service registers and redirects, the ASGI app receives
notifications and browser returns, and every status is settled by an inquiry; the merchant's
code reacts to each outcome's event: it tells the customer, then records it. One payment also
meets duplicate, reordered and forged notifications and still ends correctly, an AstraPay payment
whose first return is forged still ends paid, one partial refund is requested twice and refunded
once, and one cancel loses its answer and is settled by the reconciler.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta

import httpx
from pydantic import SecretStr

from adapters.errors import NotConfirmable
from adapters.events import CallableSink, Relay
from adapters.inbound.asgi import CALLBACK_PATH, NOTIFICATION_PATH, NotificationApp
from adapters.inbound.handler import NotificationHandler
from adapters.nicepay.client import NicepayClient
from adapters.nicepay.config import InquiryRetry, NicepayCredentials
from adapters.nicepay.messages import Billing, CartItem
from adapters.nicepay.tokens import notification_token
from adapters.reconcile.recovery import Reconciler
from adapters.reconcile.worker import StatusWorker
from adapters.service import LinkOrder, PaymentOrder, PaymentService
from adapters.simulator._browser import ScriptedBrowser
from adapters.simulator._config import CustomerAction, SimulatorConfig
from adapters.simulator._server import serve_app
from adapters.simulator._simulator import NicepaySimulator
from adapters.telemetry import ServiceTelemetry
from fsm.chain.keys import AuditKeys
from fsm.definition import Actor
from fsm.engine import Engine
from fsm.events import Event
from fsm.flows import EVENT_TYPES, FLOWS, Wallet
from fsm.model import Instance
from fsm.store.sql import SqlStore

IMID = "IONPAYTEST"
SETTLE_TIMEOUT = 15.0


@dataclass(frozen=True)
class Scenario:
    """One payment of the demo and the state it must end in."""

    name: str
    wallet: Wallet
    action: CustomerAction
    expected: str
    hostile: bool = False


SCENARIOS = (
    Scenario("ovo-paid", Wallet.OVO, CustomerAction.PAY, "order_confirmed"),
    Scenario("ovo-expired", Wallet.OVO, CustomerAction.ABANDON, "expiry_confirmed"),
    Scenario("dana-paid", Wallet.DANA, CustomerAction.PAY, "order_confirmed"),
    Scenario("linkaja-failed", Wallet.LINKAJA, CustomerAction.DECLINE, "failure_confirmed"),
    Scenario("shopeepay-app-paid", Wallet.SHOPEEPAY, CustomerAction.PAY, "order_confirmed"),
    Scenario("dana-hostile", Wallet.DANA, CustomerAction.PAY, "order_confirmed", hostile=True),
)
ASTRAPAY_EXPECTED = ("registration_confirmed", "customer_updated")
# the payment events on which the merchant tells the customer, then confirms it
TOLD_TO_CUSTOMER = frozenset({"payment.paid", "payment.failed", "payment.expired"})


@dataclass(frozen=True)
class Outcome:
    """One row of the demo's table."""

    id: str
    scenario: str
    flow: str
    wallet: str
    state: str
    expected: str
    transitions: int
    rejected: int
    refunded: str = "0"
    """The refunded total the payment stores (NICEPAY's ``cancelAmt``)."""
    expected_refunded: str = "0"

    @property
    def as_expected(self) -> bool:
        """Whether the payment ended where its scenario says it must, with as much refunded."""
        return (self.state, self.refunded) == (self.expected, self.expected_refunded)


@dataclass(frozen=True)
class MerchantRig:
    """The merchant side wired to a served simulator, as the demo (and end-to-end tests) use it."""

    service: PaymentService
    sim: NicepaySimulator
    http: httpx.Client
    """The customer's browser (a client of its own, apart from the merchant's API client)."""
    run: str
    """A short random token, for unique references and payment ids."""
    app: NotificationApp
    """The merchant's served notification app (its handler may be replaced)."""
    relay: Relay  # delivers the events to the merchant's code

    def react(self) -> None:  # the merchant's code acts on every event so far
        self.relay.drain()


def merchant_reaction(service: PaymentService) -> Callable[[Event], None]:
    """What a shop's event consumer does: tell the customer the outcome, then record it (a
    redelivered event's confirmation is a duplicate; a payment refunded since has none)."""

    def react(event: Event) -> None:
        # Here a shop emails the customer or shows the order page; then it records the step.
        with contextlib.suppress(NotConfirmable):
            if event.type in TOLD_TO_CUSTOMER:
                service.confirm_order(event.payment_id)
            elif event.type == "link.linked":
                service.confirm_link(event.payment_id)

    return react


def run_demo(db_url: str) -> list[Outcome]:
    """Run every scenario against a fresh simulator; payments go to ``db_url``."""
    store = SqlStore(db_url, audit_keys=AuditKeys.from_env())
    store.create_schema()
    with merchant_rig(Engine(store, flows=FLOWS, event_types=EVENT_TYPES), store) as rig:
        played = [_play(rig, scenario) for scenario in SCENARIOS]
        played += _play_astrapay(rig)
        played.append(_play_partial_refund(rig))
        played.append(_play_lost_cancel(rig))
        _drain(rig.sim)
        outcomes = [
            _outcome(rig, rig.service.engine.get(o.id), o.scenario, o.expected, o.expected_refunded)
            for o in played
        ]
    store.dispose()
    return outcomes


def _drain(sim: NicepaySimulator, quiet: float = 0.5) -> None:
    """Let late, duplicated and delayed notifications arrive before the table is taken."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    seen, since = len(sim.deliveries), time.monotonic()
    while time.monotonic() - since < quiet and time.monotonic() < deadline:
        time.sleep(0.05)
        if len(sim.deliveries) != seen:
            seen, since = len(sim.deliveries), time.monotonic()


def demo_config() -> SimulatorConfig:
    """The demo's simulator: a fresh random merchant key, and OVO's push window cut to 2 s."""
    key = SecretStr(secrets.token_hex(16))
    return SimulatorConfig(imid=IMID, merchant_key=key, expiry={Wallet.OVO: timedelta(seconds=2)})


@contextmanager
def merchant_rig(
    engine: Engine,
    store: SqlStore,
    config: SimulatorConfig | None = None,
    *,
    api_timeout: httpx.Timeout | None = None,
    inquiry_retry: InquiryRetry | None = None,
    status_worker: bool = True,
    telemetry: ServiceTelemetry | None = None,
) -> Iterator[MerchantRig]:
    """Serve a simulator and the merchant's notification app on loopback, wired to ``engine``.

    Args:
        engine: the merchant's engine; payments and links are stored through it.
        store: the engine's database, where the service keeps its journals too.
        config: the simulator's settings (default :func:`demo_config`); the merchant signs
            with its ``imid`` and ``merchant_key``.
        api_timeout: the merchant's NICEPAY client timeout (default 10 s).
        inquiry_retry: how the client retries inquiries (default 3 tries, 50-200 ms apart).
        status_worker: run the status checks notifications and returns ask for in a thread, as
            ``serve`` does; without it the caller runs a :class:`StatusWorker` itself.
        telemetry: where the client's and the endpoints' spans and metrics go (by default the
            global OpenTelemetry providers).
    """
    if config is None:
        config = demo_config()
    app = NotificationApp()
    timeout = httpx.Timeout(10.0)
    with (
        NicepaySimulator(config).serve() as sim,
        serve_app(app) as merchant_url,
        httpx.Client(timeout=api_timeout or timeout) as api_http,
        httpx.Client(timeout=timeout) as browser_http,
    ):
        credentials = NicepayCredentials(
            imid=config.imid, merchant_key=config.merchant_key, base_url=sim.nicepay_url
        )
        client = NicepayClient(
            api_http,
            credentials,
            clock=engine.clock,
            inquiry_retry=inquiry_retry or InquiryRetry(attempts=3, base_delay=0.05, max_delay=0.2),
            telemetry=telemetry,
        )
        service = PaymentService(
            engine,
            client,
            store=store,
            notification_url=merchant_url + NOTIFICATION_PATH,
            callback_url=merchant_url + CALLBACK_PATH,
        )
        app.handler = NotificationHandler(service, telemetry=telemetry)
        relay = Relay(store, CallableSink(merchant_reaction(service), name="merchant"))
        worker = StatusWorker(service).running(interval=0.02) if status_worker else nullcontext()
        with worker:
            yield MerchantRig(service, sim, browser_http, secrets.token_hex(3), app, relay)


DEMO_AMOUNT = "150000"
"""Every demo payment: a shirt at 140000 and shipping at 10000 (whole rupiah)."""


def demo_order(reference_no: str, wallet: Wallet, *, link_id: str | None = None) -> PaymentOrder:
    """The demo's sample order for ``wallet`` (also used by the test rig and the benchmark)."""
    return PaymentOrder(
        wallet=wallet,
        reference_no=reference_no,
        amount=DEMO_AMOUNT,
        goods_name="Batik shirt",
        billing=Billing(
            name="Siti Rahayu",
            phone="081234567890",
            email="siti@example.co.id",
            address="Jl. Merdeka 1",
            city="Jakarta",
            state="DKI Jakarta",
            post_code="10110",
            country="Indonesia",
        ),
        cart=(
            CartItem(goods_name="Batik shirt", goods_amt="140000", goods_quantity="1"),
            CartItem(goods_name="Shipping", goods_amt="10000", goods_quantity="1"),
        ),
        user_ip="127.0.0.1",
        link_id=link_id,
    )


def _play(rig: MerchantRig, scenario: Scenario) -> Outcome:
    order = demo_order(f"ORD-{rig.run}-{scenario.name}", scenario.wallet)
    rig.sim.script_customer(reference_no=order.reference_no, action=scenario.action)
    if scenario.hostile:
        rig.sim.faults.notification(order.reference_no, duplicate=2, reorder=True)
    started = rig.service.start_payment(order, payment_id=f"demo-{rig.run}-{scenario.name}")
    payment = started.instance
    if scenario.hostile:
        _forge(rig, payment)
    browser = ScriptedBrowser(rig.http, prefer="app")
    step = started.step
    browser.open(step.app_url or step.url)
    final = _settle(rig, payment.id)
    if scenario.hostile and final.tx_id:
        rig.sim.send_notification(final.tx_id)  # a late redelivery, after the order is confirmed
    return _outcome(rig, final, scenario.name, scenario.expected)


def _forge(rig: MerchantRig, payment: Instance) -> None:
    """An attacker's notification and browser return, before the customer has paid."""
    tx_id = payment.tx_id or ""
    fake = {
        "tXid": tx_id,
        "referenceNo": payment.reference_no or "",
        "amt": payment.amount or "",
        "iMid": IMID,
        "status": "0",
        "merchantToken": notification_token(IMID, tx_id, payment.amount or "", SecretStr("guess")),
    }
    rig.http.post(rig.service.notification_url, data=fake)
    rig.http.get(rig.service.callback_url, params={**fake, "resultCd": "0000"})


def _settle(rig: MerchantRig, payment_id: str) -> Instance:
    """Wait for the status check the notification asked for (the rig's worker runs it) to
    settle the payment; then the merchant reacts to its event."""
    engine = rig.service.engine
    payment = _wait(engine, payment_id, lambda p: engine.flow_of(p).state(p.state).kind.settled)
    if not engine.flow_of(payment).state(payment.state).kind.settled:
        # Nothing arrived in time: the deadline's status check, run now.
        payment = rig.service.check_status(payment_id, actor=Actor.TIMER)
    rig.react()
    return engine.get(payment_id)


def _wait(engine: Engine, instance_id: str, done: Callable[[Instance], bool]) -> Instance:
    deadline = time.monotonic() + SETTLE_TIMEOUT
    instance = engine.get(instance_id)
    while not done(instance) and time.monotonic() < deadline:
        time.sleep(0.05)
        instance = engine.get(instance_id)
    return instance


def _play_astrapay(rig: MerchantRig) -> list[Outcome]:
    link_order = LinkOrder(
        reference_no=f"LNK-{rig.run}",
        billing_name="Siti Rahayu",
        billing_phone="081234567891",
        billing_email="siti@example.co.id",
        user_ip="127.0.0.1",
    )
    rig.sim.script_customer(reference_no=link_order.reference_no, action=CustomerAction.PAY)
    started = rig.service.start_link(link_order, link_id=f"demo-{rig.run}-astrapay-link")
    ScriptedBrowser(rig.http).submit(started.step.url, started.step.fields)
    engine = rig.service.engine
    link = _wait(engine, started.instance.id, lambda i: i.state in {"linked", "mandate_missing"})
    rig.react()
    link = engine.get(link.id)
    return [
        _outcome(rig, link, "astrapay-link", ASTRAPAY_EXPECTED[0]),
        _pay_astrapay(rig, link, "astrapay-pay"),
        _pay_astrapay(rig, link, "astrapay-forged-return", forge_return=True),
    ]


def _pay_astrapay(
    rig: MerchantRig, link: Instance, name: str, *, forge_return: bool = False
) -> Outcome:
    """Pay with the link's mandate; ``forge_return``: an attacker's return comes first.

    The forged return names a tXid NICEPAY never issued. It is kept as a hint that NICEPAY's
    inquiry refuses, binds nothing, and shuts out neither the customer's own return nor the
    notification, so the payment still ends paid.
    """
    order = demo_order(f"ORD-{rig.run}-{name}", Wallet.ASTRAPAY, link_id=link.id)
    rig.sim.script_customer(reference_no=order.reference_no, action=CustomerAction.PAY)
    paying = rig.service.start_payment(order, payment_id=f"demo-{rig.run}-{name}")
    if forge_return:
        bogus = {"tXid": f"{IMID}05{'0' * 14}9999", "referenceNo": order.reference_no}
        rig.http.get(rig.service.callback_url, params={**bogus, "resultCd": "0000"})
    ScriptedBrowser(rig.http).submit(paying.step.url, paying.step.fields)
    final = _settle(rig, paying.instance.id)
    return _outcome(rig, final, name, ASTRAPAY_EXPECTED[1])


def _paid_order(rig: MerchantRig, name: str, wallet: Wallet) -> Instance:
    """A payment of ``wallet`` paid by its customer and confirmed to them."""
    order = demo_order(f"ORD-{rig.run}-{name}", wallet)
    rig.sim.script_customer(reference_no=order.reference_no, action=CustomerAction.PAY)
    started = rig.service.start_payment(order, payment_id=f"demo-{rig.run}-{name}")
    ScriptedBrowser(rig.http, prefer="app").open(started.step.app_url or started.step.url)
    return _settle(rig, started.instance.id)


def _play_partial_refund(rig: MerchantRig) -> Outcome:
    """One item of a paid order is refunded, and the request is sent again (a retry, or a
    second replica): the retry answers from the first and NICEPAY refunds 50000 once."""
    name = "shopeepay-partial-refund"
    paid = _paid_order(rig, name, Wallet.SHOPEEPAY)
    for _ in range(2):
        rig.service.cancel(
            paid.id,
            request_id=f"{name}-1",
            amount="50000",
            reason="one shirt returned",
            requested_by="demo shop",
        )
    final = rig.service.engine.get(paid.id)
    return _outcome(rig, final, name, "refunded", expected_refunded="50000")


def _play_lost_cancel(rig: MerchantRig) -> Outcome:
    """A paid order is cancelled, and NICEPAY's answer is lost; the payment still ends voided.

    NICEPAY carries the cancel out and then answers 503, as a dropped connection would. The
    request stays in doubt, so its retry sends nothing and nothing is refunded twice. The void
    arrives by NICEPAY's notification and its inquiry; the reconciler's pass after the grace
    period asks once more and closes the cancel's intent.
    """
    name = "ovo-cancel-answer-lost"
    paid = _paid_order(rig, name, Wallet.OVO)
    rig.sim.faults.response("/direct/v2/cancel", status=503, process=True)
    for reason in ("customer changed their mind", "the customer asks again"):
        rig.service.cancel(paid.id, request_id=f"{name}-1", reason=reason)
    reconciler = Reconciler(rig.service)  # its repairs only: the database may hold other runs
    reconciler.repair_open_intents(rig.service.engine.clock.now() + reconciler.grace)
    final = rig.service.engine.get(paid.id)
    return _outcome(rig, final, name, "voided", expected_refunded=DEMO_AMOUNT)


def _outcome(
    rig: MerchantRig,
    instance: Instance,
    scenario: str,
    expected: str,
    expected_refunded: str = "0",
) -> Outcome:
    return Outcome(
        id=instance.id,
        scenario=scenario,
        flow=instance.flow,
        wallet=instance.wallet or "",
        state=instance.state,
        expected=expected,
        transitions=instance.version,
        rejected=len(rig.service.engine.rejections(instance.id)),
        refunded=instance.refunded_amount or "0",
        expected_refunded=expected_refunded,
    )
