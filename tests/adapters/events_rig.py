"""What the relay tests share: an engine that writes events, payments driven to settled states,
a sink that records what it was given, and a loopback HTTP receiver of webhooks."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fsm import Actor, Engine, ManualClock, SqlStore
from fsm.events import Event
from fsm.flows import EVENT_TYPES, FLOWS

MINUTE = timedelta(minutes=1)
TO_PAID = (
    ("send_registration", Actor.MERCHANT, None),
    ("accept_registration", Actor.PROVIDER_RESPONSE, {"tx_id": "TX"}),
    ("request_payment", Actor.MERCHANT, None),
    ("push_to_app", Actor.PROVIDER_RESPONSE, None),
    ("check_status", Actor.TIMER, None),
    ("confirm_payment", Actor.STATUS_INQUIRY, None),
    ("confirm_order", Actor.MERCHANT, None),
)
"""An OVO payment to paid and then order_confirmed: two events, in that order."""


def event_engine(store: SqlStore, clock: ManualClock) -> Engine:
    return Engine(store, flows=FLOWS, clock=clock, event_types=EVENT_TYPES)


def settle(engine: Engine, clock: ManualClock, count: int) -> list[str]:
    """``count`` payments, each paid and then confirmed: two events each."""
    ids = []
    for number in range(count):
        pid = engine.start("ewallet_payment", wallet="ovo", amount=1000 + number).id
        for event, actor, payload in TO_PAID:
            clock.advance(MINUTE)
            tx = None if payload is None else {"tx_id": f"TX{number}", "reference_no": f"R{number}"}
            engine.fire(pid, event, actor=actor, idempotency_key=f"{pid}-{event}", payload=tx)
        ids.append(pid)
    return ids


class Recorder:
    """A sink's handler that records every event it is given, and may fail some attempts."""

    def __init__(self, fail: Callable[[Event], bool] | None = None) -> None:
        self.events: list[Event] = []
        self.lock = threading.Lock()
        self._fail = fail

    def __call__(self, event: Event) -> None:
        if self._fail is not None and self._fail(event):
            raise ConnectionError("consumer down")
        with self.lock:
            self.events.append(event)


class Received:
    """What a loopback webhook receiver was sent; it answers ``statuses`` in turn, then 200."""

    def __init__(self, statuses: list[int]) -> None:
        self.requests: list[tuple[bytes, dict[str, str]]] = []
        self.statuses = statuses


@contextmanager
def webhook_receiver(statuses: list[int] | None = None) -> Iterator[tuple[str, Received]]:
    """A real HTTP server on loopback; yields its URL and what it received."""
    received = Received(list(statuses or []))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.requests.append((body, dict(self.headers.items())))
            status = received.statuses.pop(0) if received.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/payments", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
