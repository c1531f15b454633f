"""A loopback simulator that counts the inquiries it answers, per tXid, as it serves them."""

from __future__ import annotations

import json
import secrets
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from pydantic import SecretStr

from adapters.client import INQUIRY_PATH, InquiryRetry, NicepayClient
from adapters.config import NicepayCredentials
from adapters.demo import IMID
from adapters.simulator import NicepaySimulator, SimulatorConfig, serve_app
from fsm.clock import ManualClock

SIM_EXPIRY = dict.fromkeys(("ovo", "dana", "linkaja", "shopeepay", "astrapay"), timedelta(hours=2))
"""Nothing expires at the simulator by itself while a test runs: only the test expires."""


class InquiryCounter:
    """The simulator's ASGI app, counting per tXid the inquiries it has answered."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._served: Counter[str] = Counter()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith(INQUIRY_PATH):
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
        """Inquiries answered so far, per tXid."""
        with self._lock:
            return Counter(self._served)


@dataclass(frozen=True)
class Nicepay:
    """The served simulator, its inquiry counter, and what a merchant needs to reach it."""

    sim: NicepaySimulator
    inquiries: InquiryCounter
    url: str
    config: SimulatorConfig

    def client(self, http: httpx.Client, clock: ManualClock) -> NicepayClient:
        credentials = NicepayCredentials(
            imid=self.config.imid, merchant_key=self.config.merchant_key, base_url=self.url
        )
        retry = InquiryRetry(attempts=3, base_delay=0.02, max_delay=0.1)
        return NicepayClient(http, credentials, clock=clock, inquiry_retry=retry)


@contextmanager
def counted_simulator() -> Iterator[Nicepay]:
    """A simulator on loopback behind an :class:`InquiryCounter`."""
    config = SimulatorConfig(
        imid=IMID, merchant_key=SecretStr(secrets.token_hex(16)), expiry=SIM_EXPIRY
    )
    sim = NicepaySimulator(config)
    counter = InquiryCounter(sim.app)
    sim.open()
    try:
        with serve_app(counter) as base_url:
            yield Nicepay(sim, counter, base_url + "/nicepay", config)
    finally:
        sim.close()
