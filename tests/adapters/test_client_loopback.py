"""NicepayClient against a real HTTP server on loopback: real sockets, real timeouts."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from adapters.errors import ProviderTimeout
from adapters.nicepay.client import NicepayClient
from adapters.nicepay.config import InquiryRetry, NicepayCredentials, simulator_base_url
from fsm.clock import ManualClock
from tests.adapters.nicepay_fake import IMID, KEY_TEXT, TXID, sha


class _Inquiry(BaseHTTPRequestHandler):
    """Answers /nicepay/direct/v2/inquiry, checking T1; reference 'SLOW' answers too late."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body["referenceNo"] == "SLOW":
            time.sleep(1.0)
        expected = sha(body["timeStamp"], IMID, body["referenceNo"], body["amt"], KEY_TEXT)
        valid = self.path == "/nicepay/direct/v2/inquiry" and body["merchantToken"] == expected
        reply = (
            {"resultCd": "0000", "tXid": body["tXid"], "status": "0"}
            if valid
            else {
                "resultCd": "9010",
                "resultMsg": "Invalid merchantToken",
            }
        )
        payload = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """The slow answer hits a socket the timed-out client closed: expected, not news."""


@pytest.fixture
def server_port() -> Iterator[int]:
    server = _QuietServer(("127.0.0.1", 0), _Inquiry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _client(port: int, http: httpx.Client) -> NicepayClient:
    credentials = NicepayCredentials(
        imid=IMID, merchant_key=KEY_TEXT, base_url=simulator_base_url(port)
    )
    clock = ManualClock(datetime(2025, 1, 31, 17, 30, tzinfo=UTC))
    return NicepayClient(
        http, credentials, clock=clock, inquiry_retry=InquiryRetry(attempts=1), sleep=lambda _: None
    )


def test_inquiry_over_a_real_socket(server_port: int) -> None:
    with httpx.Client(timeout=httpx.Timeout(5.0)) as http:
        response = _client(server_port, http).inquiry(TXID, "ORD-1", "12000")
    assert (response.tx_id, response.status) == (TXID, "0")


def test_a_real_read_timeout_becomes_provider_timeout(server_port: int) -> None:
    with httpx.Client(timeout=httpx.Timeout(5.0, read=0.2)) as http, pytest.raises(ProviderTimeout):
        _client(server_port, http).inquiry(TXID, "SLOW", "12000")
