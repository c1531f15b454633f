"""A NICEPAY V2 Direct e-wallet simulator on loopback, for tests and the demo.

It serves the reference's paths under ``/nicepay`` (registration, payment page, inquiry, cancel,
AstraPay ``linkEnable.do``/``linkInitiate.do``), the wallets' pages under ``/partner/<wallet>``
and test control under ``/_sim``. Each transaction is an instance of the ``nicepay_transaction``
flow in a private engine; notifications go to ``dbProcessUrl`` from a worker thread, and the
browser returns to ``callBackUrl`` through NICEPAY's result page. Faults are armed per call.
"""

from adapters.simulator._browser import BrowserOutcome, BrowserResult, ScriptedBrowser
from adapters.simulator._config import (
    DEFAULT_CANCEL_RULES,
    CancelRule,
    CustomerAction,
    SimulatorConfig,
)
from adapters.simulator._control import TransactionView
from adapters.simulator._faults import Faults
from adapters.simulator._notify import USER_AGENT, Delivery
from adapters.simulator._server import serve_app
from adapters.simulator._simulator import NicepaySimulator

__all__ = [
    "DEFAULT_CANCEL_RULES",
    "USER_AGENT",
    "BrowserOutcome",
    "BrowserResult",
    "CancelRule",
    "CustomerAction",
    "Delivery",
    "Faults",
    "NicepaySimulator",
    "ScriptedBrowser",
    "SimulatorConfig",
    "TransactionView",
    "serve_app",
]
