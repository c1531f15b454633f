"""The NICEPAY simulator: its parts wired together, served on loopback, with a handle for tests.

::

    with NicepaySimulator(config).serve(port=0) as sim:
        sim.script_customer(reference_no="ORD-1", action="pay")
        sim.faults.notification("ORD-1", duplicate=1)
        ...  # point the client at sim.nicepay_url

or in-process, without a socket, for a client's unit tests::

    sim = NicepaySimulator(config)
    sim.open()
    http = httpx.Client(transport=sim.mock_transport(), base_url="http://nicepay.test")
    ...  # the client's base URL is "http://nicepay.test/nicepay"
    sim.close()
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from adapters.simulator._api import NicepayApi
from adapters.simulator._asgi import AsgiApp, Handler, Request, Response
from adapters.simulator._config import CustomerAction, SimulatorConfig
from adapters.simulator._control import CONTROL_PREFIX, Control, TransactionView, view
from adapters.simulator._customer import CustomerScripts, Script
from adapters.simulator._faults import Faults
from adapters.simulator._ledger import Ledger, Transaction
from adapters.simulator._lifecycle import Lifecycle
from adapters.simulator._mock import mock_transport
from adapters.simulator._notify import Delivery, Notifier
from adapters.simulator._pages import LINK_RESULT_PATH, PAYMENT_RESULT_PATH, NicepayPages
from adapters.simulator._partner import PARTNER_WALLETS, PartnerPages
from adapters.simulator._scheduler import Scheduler
from adapters.simulator._server import serve_app
from fsm.engine import Engine

logger = logging.getLogger(__name__)

NICEPAY_PREFIX = "/nicepay"


class NicepaySimulator:
    """A simulated NICEPAY V2 Direct e-wallet service (see the package docstring)."""

    def __init__(
        self,
        config: SimulatorConfig,
        *,
        notification_transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Prepare a simulator; nothing runs until :meth:`serve` (or :meth:`open`).

        Args:
            config: how the simulated NICEPAY behaves.
            notification_transport: what carries notifications to ``dbProcessUrl`` (by
                default the network); a test may keep them in-process.
        """
        self.config = config
        self._notification_transport = notification_transport
        self.faults = Faults()
        """Fault injection: ``notification``, ``callback`` and ``response``."""
        self.base_url: str | None = None
        """``http://127.0.0.1:<port>`` while serving."""
        self._scripts = CustomerScripts()
        self._stack: ExitStack | None = None
        self._life: Lifecycle | None = None
        self._router: _Router | None = None
        self.app = AsgiApp(self._handle, self.faults, timeout_hold=config.timeout_hold)
        """The raw ASGI application, usable once the simulator is open."""

    @property
    def nicepay_url(self) -> str:
        """The base URL a client uses: ``base_url + "/nicepay"``."""
        if self.base_url is None:
            raise RuntimeError("the simulator is not serving")
        return self.base_url + NICEPAY_PREFIX

    def open(self) -> None:
        """Create the engine database and start the background workers."""
        if self._stack is not None:
            raise RuntimeError("the simulator is already open")
        stack = ExitStack()
        try:
            self._life = self._start(stack)
            self._router = _Router(self._life, self.faults, self._scripts)
        except BaseException:
            stack.close()
            raise
        self._stack = stack

    def _start(self, stack: ExitStack) -> Lifecycle:
        db_url = self.config.db_url
        if db_url is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="nicepay-sim-"))
            db_url = f"sqlite:///{Path(folder) / 'nicepay.sqlite3'}"
        ledger = Ledger(self.config, db_url)
        stack.callback(ledger.close)
        http = stack.enter_context(
            httpx.Client(
                timeout=self.config.notification_timeout,
                trust_env=False,
                transport=self._notification_transport,
            )
        )
        deliveries = _started(stack, Scheduler("nicepay-sim-notifications"))
        customers = _started(stack, Scheduler("nicepay-sim-customers"))
        notifier = Notifier(self.config, self.faults, deliveries, http)
        life = Lifecycle(self.config, ledger, notifier, customers, self._scripts)
        self._sweep_in_background(stack, ledger)
        return life

    def _sweep_in_background(self, stack: ExitStack, ledger: Ledger) -> None:
        stop = threading.Event()

        def sweep() -> None:
            while not stop.wait(self.config.sweep_interval):
                try:
                    ledger.sweep()
                except Exception:  # keep sweeping; the failure is logged
                    logger.exception("expiry sweep failed")

        thread = threading.Thread(target=sweep, name="nicepay-sim-sweeper", daemon=True)
        thread.start()
        stack.callback(thread.join, 10)
        stack.callback(stop.set)

    def close(self) -> None:
        """Stop the workers and drop the engine database (a temp file unless ``db_url``)."""
        stack, self._stack, self._life, self._router = self._stack, None, None, None
        if stack is not None:
            stack.close()

    @contextmanager
    def serve(self, port: int = 0) -> Iterator[NicepaySimulator]:
        """Open the simulator and serve it on ``127.0.0.1:port`` (0: a free port) for a block.

        Raises:
            OSError: the port is taken.
        """
        self.open()
        try:
            with serve_app(self.app, port=port) as base_url:
                self.base_url = base_url
                yield self
        finally:
            self.base_url = None
            self.close()

    def mock_transport(self) -> httpx.MockTransport:
        """This simulator in-process, as a transport for ``httpx.Client`` (serving once open).

        Response faults apply as on loopback; a ``timeout`` raises ``httpx.ReadTimeout``.
        """
        return mock_transport(self._handle, self.faults)

    @property
    def lifecycle(self) -> Lifecycle:
        """The running lifecycle (raises when the simulator is not open)."""
        if self._life is None:
            raise RuntimeError("the simulator is not open")
        return self._life

    @property
    def engine(self) -> Engine:
        """The private engine whose ``nicepay_transaction`` instances are the transactions."""
        return self.lifecycle.ledger.engine

    def _handle(self, request: Request) -> Response:
        if self._router is None:
            return Response.json({"error": "the simulator is closed"}, status=503)
        response = self._router.route(request)
        return response or Response.json({"error": f"no route {request.path}"}, status=404)

    def script_customer(
        self,
        *,
        reference_no: str | None = None,
        billing_phone: str | None = None,
        action: CustomerAction | str = CustomerAction.PAY,
        delay: float = 0.0,
    ) -> None:
        """Decide what the customer of ``reference_no`` (or of an OVO ``billing_phone``) does.

        Args:
            reference_no: the merchant's referenceNo (also an AstraPay link request's).
            billing_phone: every transaction with this phone, e.g. one OVO account.
            action: ``pay``/``approve``, ``decline``, or ``abandon``/``ignore`` (it expires).
            delay: seconds before the customer acts (OVO) or the browser presses the button.
        """
        script = Script(CustomerAction.parse(action), delay)
        self._scripts.add(script, reference_no=reference_no, billing_phone=billing_phone)

    @property
    def deliveries(self) -> tuple[Delivery, ...]:
        """Every notification delivery attempt so far."""
        return self.lifecycle.notifier.deliveries

    def wait_for_deliveries(self, count: int, timeout: float = 5.0) -> tuple[Delivery, ...]:
        """Wait until ``count`` delivery attempts are recorded, then return all of them."""
        return self.lifecycle.notifier.wait(count, timeout)

    def _tx(self, tx_id: str | None, reference_no: str | None) -> Transaction:
        ledger = self.lifecycle.ledger
        tx = ledger.get(tx_id) if tx_id else ledger.by_reference(reference_no or "")
        if tx is None:
            raise KeyError(tx_id or reference_no)
        return tx

    def transaction(
        self, tx_id: str | None = None, *, reference_no: str | None = None
    ) -> TransactionView:
        """A snapshot of one transaction, by tXid or referenceNo (``KeyError`` if unknown)."""
        return view(self.lifecycle, self._tx(tx_id, reference_no))

    def approve(self, tx_id: str) -> bool:
        """The wallet approves now (as the test-control endpoint does)."""
        return self.lifecycle.pay(self._tx(tx_id, None))

    def decline(self, tx_id: str) -> bool:
        """The wallet declines now."""
        return self.lifecycle.decline(self._tx(tx_id, None))

    def expire(self, tx_id: str) -> bool:
        """The timer expires the transaction now."""
        return self.lifecycle.expire(self._tx(tx_id, None))

    def send_notification(self, tx_id: str, status: str = "0") -> None:
        """Send a notification now with ``status`` and a valid token, whatever the state."""
        self.lifecycle.notify(self._tx(tx_id, None), "manual", status)

    def mandate_of(self, link_reference_no: str) -> str | None:
        """The mandate an AstraPay link request produced, if it was completed."""
        link = self.lifecycle.ledger.link(link_reference_no)
        return None if link is None else link.mandate

    def revoke_mandate(self, mandate: str) -> None:
        """Revoke a mandate: later ``linkInitiate.do`` calls with it fail (9752)."""
        link = self.lifecycle.ledger.mandate_link(mandate)
        if link is None:
            raise KeyError(mandate)
        link.revoked = True


def _started(stack: ExitStack, scheduler: Scheduler) -> Scheduler:
    scheduler.start()
    stack.callback(scheduler.stop)
    return scheduler


class _Router:
    """Paths to handlers: ``/nicepay/...``, ``/partner/<wallet>/...`` and ``/_sim/...``."""

    def __init__(self, life: Lifecycle, faults: Faults, scripts: CustomerScripts) -> None:
        api, pages = NicepayApi(life), NicepayPages(life, faults)
        self._partner = PartnerPages(life)
        self._control = Control(life, scripts)
        self._post_only: dict[str, Handler] = {
            "/direct/v2/registration": api.registration,
            "/direct/v2/inquiry": api.inquiry,
            "/direct/v2/cancel": api.cancel,
        }
        self._browser: dict[str, Handler] = {
            "/direct/v2/payment": pages.payment,
            "/api/linkEnable.do": pages.link_enable,
            "/api/linkInitiate.do": pages.link_initiate,
            PAYMENT_RESULT_PATH.removeprefix(NICEPAY_PREFIX): pages.payment_result,
            LINK_RESULT_PATH.removeprefix(NICEPAY_PREFIX): pages.link_result,
        }

    def route(self, request: Request) -> Response | None:
        path = request.path.rstrip("/") or "/"
        if path.startswith(NICEPAY_PREFIX + "/"):
            return self._nicepay(request, path.removeprefix(NICEPAY_PREFIX))
        if path.startswith("/partner/"):
            slug, _, page = path.removeprefix("/partner/").partition("/")
            wallet = next((w for w in PARTNER_WALLETS if w.value == slug), None)
            if wallet is None:
                return None
            return self._partner.route(request, wallet, f"/{page}" if page else "")
        if path.startswith(CONTROL_PREFIX + "/"):
            return self._control.route(request)
        return None

    def _nicepay(self, request: Request, route: str) -> Response | None:
        if request.method == "POST" and route in self._post_only:
            return self._post_only[route](request)
        if request.method in ("GET", "POST") and route in self._browser:
            return self._browser[route](request)
        return None
