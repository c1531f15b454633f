"""Rigs for the inbound endpoints over real HTTP: replicas on one database, and ``serve`` itself.

:func:`open_replicas` serves the notification app twice on loopback, each replica with its own
store, engine, NICEPAY client and status worker on one database and one clock, in front of a
simulator that counts the inquiries it answers. :func:`serving` runs ``ewallet-fsm serve`` as a
subprocess and hands back everything it printed once it has stopped.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select

from adapters.inbound.asgi import CALLBACK_PATH, HEALTH_PATH, NOTIFICATION_PATH, NotificationApp
from adapters.inbound.handler import NotificationHandler
from adapters.reconcile.worker import StatusWorker, WorkRound
from adapters.service import PaymentService
from adapters.simulator import serve_app
from adapters.simulator.rig import demo_order
from fsm.clock import ManualClock
from fsm.engine import Engine
from fsm.flows import FLOWS, Wallet
from fsm.model import Instance
from fsm.store.sql import SqlStore
from tests.adapters.counted_nicepay import Nicepay
from tests.conftest import SCHEMA_TABLES

WAIT = 10.0


@dataclass
class Replicas:
    """Replicas of the merchant's endpoints on one database, and the counted simulator."""

    nicepay: Nicepay
    clock: ManualClock
    services: list[PaymentService]
    urls: list[str]
    http: httpx.Client
    workers: list[StatusWorker]

    @property
    def service(self) -> PaymentService:
        """The first replica's service."""
        return self.services[0]

    @property
    def engine(self) -> Engine:
        """The first replica's engine (every replica sees the same database)."""
        return self.services[0].engine

    def start(self, reference_no: str, wallet: Wallet = Wallet.DANA) -> Instance:
        """A payment registered at the simulator, its notifications dropped there."""
        self.nicepay.sim.faults.notification(reference_no, drop=True, times=None)
        return self.services[0].start_payment(demo_order(reference_no, wallet)).instance

    def work(self) -> WorkRound:
        """Each replica's worker runs the status checks requested so far; what they did."""
        total = WorkRound()
        for worker in self.workers:
            total += worker.drain()
        return total

    def inquiries(self, payment: Instance) -> int:
        """The inquiries the simulator has answered about the payment."""
        return self.nicepay.calls.served()[payment.tx_id or ""]

    def captured(self, payment: Instance) -> dict[str, str]:
        """The genuine notification NICEPAY sent for the payment (dropped before it arrived)."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            sent = [d for d in self.nicepay.sim.deliveries if d.tx_id == payment.tx_id]
            if sent:
                return dict(sent[-1].fields)
            time.sleep(0.02)
        raise AssertionError(f"no notification for {payment.tx_id} in {WAIT} s")

    def post(self, path: str, replica: int = 0, **arguments: Any) -> httpx.Response:
        """One request to a replica's endpoint."""
        return self.http.post(self.urls[replica % len(self.urls)] + path, **arguments)

    def get(self, path: str, replica: int = 0, **arguments: Any) -> httpx.Response:
        """One GET to a replica's endpoint."""
        return self.http.get(self.urls[replica % len(self.urls)] + path, **arguments)


@contextmanager
def open_replicas(db_url: str, nicepay: Nicepay, count: int = 2) -> Iterator[Replicas]:
    """``count`` replicas of the endpoints on ``db_url``; the first one's URLs are registered."""
    clock = ManualClock(datetime.now(UTC))
    with ExitStack() as stack:
        http = stack.enter_context(httpx.Client(timeout=httpx.Timeout(WAIT)))
        services: list[PaymentService] = []
        urls: list[str] = []
        for _ in range(count):
            store = SqlStore(db_url)
            stack.callback(store.dispose)
            store.create_schema()
            engine = Engine(store, flows=FLOWS, clock=clock)
            app = NotificationApp()
            url = stack.enter_context(serve_app(app))
            base = urls[0] if urls else url
            service = PaymentService(
                engine,
                nicepay.client(http, clock),
                store=store,
                notification_url=base + NOTIFICATION_PATH,
                callback_url=base + CALLBACK_PATH,
            )
            app.handler = NotificationHandler(service)
            services.append(service)
            urls.append(url)
        workers = [StatusWorker(service) for service in services]
        yield Replicas(nicepay, clock, services, urls, http, workers)


# --- ewallet-fsm serve as a subprocess ---------------------------------------------------------


@dataclass
class Served:
    """A running ``serve`` and, once it has stopped, what it printed."""

    url: str
    output: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_cli(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``ewallet-fsm ARGS`` in a subprocess, to its end."""
    return subprocess.run(  # noqa: S603 - our own interpreter and module
        [*_COMMAND, *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@contextmanager
def serving(*args: str, env: Mapping[str, str], verbose: bool = True) -> Iterator[Served]:
    """``ewallet-fsm -v serve ARGS`` (without ``-v`` unless ``verbose``) on a free port until
    the block ends (then SIGINT)."""
    port = free_port()
    command = [*_COMMAND, *(["-v"] if verbose else []), "serve", "--port", str(port), *args]
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        command,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    served = Served(f"http://127.0.0.1:{port}")
    try:
        _wait_healthy(served.url, process)
        yield served
    finally:
        process.send_signal(signal.SIGINT)
        try:
            out, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # never leave the server behind for later tests
            process.kill()
            out, err = process.communicate()
        served.output.extend([out, err])


_COMMAND = [sys.executable, "-c", "from adapters.cli import main; raise SystemExit(main())"]


def _wait_healthy(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited with {process.returncode}")
        try:
            if httpx.get(url + HEALTH_PATH, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("serve did not answer its health check in 30 s")


def send_partial(url: str, path: str, body: bytes) -> bytes:
    """A POST promising 100 bytes more than it sends; the answer, once it comes."""
    parts = urlsplit(url)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
        f"\r\nContent-Length: {len(body) + 100}\r\n\r\n"
    ).encode()
    answer = b""
    with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=10) as sock:
        sock.sendall(head + body)
        while b"}" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer


# --- where a secret could end up ---------------------------------------------------------------


def stored_rows(store: SqlStore) -> str:
    """Every row of every table, as one JSON text."""
    with store.engine.connect() as conn:
        rows = [row._asdict() for table in SCHEMA_TABLES for row in conn.execute(select(table))]
    return json.dumps(rows, default=str)


def logged(records: Iterable[logging.LogRecord]) -> str:
    """Every captured log record, message and fields, as one text."""
    return "\n".join(f"{record.getMessage()} {vars(record)!r}" for record in records)


def leaked(text: str, secrets: Iterable[str]) -> list[str]:
    """The ``secrets`` (in any case) that appear in ``text``."""
    lowered = text.lower()
    return [secret for secret in secrets if secret.lower() in lowered]
