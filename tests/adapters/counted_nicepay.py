"""The loopback simulator behind a counter of the calls it serves to one path, per tXid.

What NICEPAY received is counted where it receives it, so a test can say how often a call was
made whatever the merchant's processes believe they sent. A :class:`Gate` in front of it keeps
the calls to one path waiting, unanswered and not yet carried out, until the test lets them in:
a NICEPAY that is slow to take a call up, without a timed sleep.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from pydantic import SecretStr

from adapters.nicepay.client import INQUIRY_PATH, NicepayClient
from adapters.nicepay.config import InquiryRetry, NicepayCredentials
from adapters.simulator import NicepaySimulator, SimulatorConfig, serve_app
from adapters.simulator.rig import IMID
from fsm.clock import ManualClock


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


GATE_LIMIT = 30.0
"""Seconds a gate holds a call at most, should a failing test never open it."""


class Gate:
    """Holds the calls to one path in front of NICEPAY while it is closed (it starts open)."""

    def __init__(self, path: str, *, takes_in: bool = False) -> None:
        self.path = path
        self.takes_in = takes_in
        """Whether NICEPAY reads a held call's request before holding it: it then carries the
        call out when let in, even if the caller has given up waiting and hung up."""
        self._open = threading.Event()
        self._open.set()
        self._arrived = threading.Event()

    def close(self) -> None:
        """Hold every call to the path from now on, until :meth:`open`."""
        self._arrived.clear()
        self._open.clear()

    def open(self) -> None:
        """Let the held calls, and every later one, through."""
        self._open.set()

    def wait_for_call(self) -> None:
        """Wait until a call is held at the closed gate."""
        assert self._arrived.wait(GATE_LIMIT), f"no call to {self.path} reached the gate"

    async def pass_through(self, path: str) -> None:
        """Hold a call to ``path`` while the gate is closed; any other passes at once."""
        if not path.endswith(self.path) or self._open.is_set():
            return
        self._arrived.set()
        await asyncio.to_thread(self._open.wait, GATE_LIMIT)


class Gated:
    """An ASGI app behind gates."""

    def __init__(self, app: Any, gates: Sequence[Gate]) -> None:
        self._app = app
        self._gates = tuple(gates)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if any(gate.takes_in and path.endswith(gate.path) for gate in self._gates):
                receive = await _taken_in(receive)
            for gate in self._gates:
                await gate.pass_through(path)
        await self._app(scope, receive, send)


async def _taken_in(receive: Any) -> Any:
    """Read the whole request now; what reads it later gets it as read, then ``receive``."""
    messages: list[dict[str, Any]] = []
    while not messages or messages[-1].get("more_body"):
        messages.append(await receive())
        if messages[-1]["type"] != "http.request":
            break

    async def replay() -> dict[str, Any]:
        return messages.pop(0) if messages else await receive()

    return replay


@dataclass(frozen=True)
class Nicepay:
    """The served simulator, its call counter, and what a merchant needs to reach it."""

    sim: NicepaySimulator
    calls: CallCounter
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
def counted_simulator(
    config: SimulatorConfig, path: str, gates: Sequence[Gate] = ()
) -> Iterator[Nicepay]:
    """A simulator served on loopback behind a :class:`CallCounter` of the calls to ``path``,
    and behind ``gates``."""
    sim = NicepaySimulator(config)
    counter = CallCounter(sim.app, path)
    sim.open()
    try:
        with serve_app(Gated(counter, gates)) as base_url:
            yield Nicepay(sim, counter, base_url + "/nicepay", config)
    finally:
        sim.close()


SIM_EXPIRY = dict.fromkeys(("ovo", "dana", "linkaja", "shopeepay", "astrapay"), timedelta(hours=2))
"""Nothing expires at the simulator by itself while a test runs: only the test expires."""


def counted_inquiries() -> AbstractContextManager[Nicepay]:
    """A simulator with a fresh merchant key, counting the inquiries it answers."""
    config = SimulatorConfig(
        imid=IMID, merchant_key=SecretStr(secrets.token_hex(16)), expiry=SIM_EXPIRY
    )
    return counted_simulator(config, INQUIRY_PATH)
