"""The merchant side wired to a served simulator: what the demo, the end-to-end tests and the
benchmark stand on.

:func:`merchant_rig` serves the simulator and the merchant's notification app on loopback, with a
status worker running the checks notifications ask for and a relay handing every event to
:func:`merchant_reaction`, the code a shop writes: tell the customer, then confirm the outcome.
"""

from __future__ import annotations

import contextlib
import secrets
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
from adapters.reconcile.worker import StatusWorker
from adapters.service import PaymentOrder, PaymentService
from adapters.simulator._config import SimulatorConfig
from adapters.simulator._server import serve_app
from adapters.simulator._simulator import NicepaySimulator
from adapters.telemetry import ServiceTelemetry
from fsm.engine import Engine
from fsm.events import Event
from fsm.flows import Wallet
from fsm.store.sql import SqlStore

IMID = "IONPAYTEST"

# the payment events on which the merchant tells the customer, then confirms it
TOLD_TO_CUSTOMER = frozenset({"payment.paid", "payment.failed", "payment.expired"})


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
        worker = StatusWorker(service, telemetry=telemetry)
        running = worker.running(interval=0.02) if status_worker else nullcontext()
        with running:
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


__all__ = [
    "DEMO_AMOUNT",
    "IMID",
    "TOLD_TO_CUSTOMER",
    "MerchantRig",
    "demo_config",
    "demo_order",
    "merchant_reaction",
    "merchant_rig",
]
