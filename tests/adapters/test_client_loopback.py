"""NicepayClient against the simulator served on loopback: real sockets, real timeouts."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from adapters.errors import ProviderTimeout
from adapters.nicepay.client import INQUIRY_PATH, NicepayClient
from adapters.nicepay.config import InquiryRetry, NicepayCredentials
from adapters.simulator import NicepaySimulator
from fsm.clock import ManualClock
from tests.adapters.mock_nicepay import new_simulator
from tests.adapters.values import IMID, KEY_TEXT, START, registration


@pytest.fixture
def served() -> Iterator[NicepaySimulator]:
    with new_simulator(ManualClock(START)).serve() as sim:
        yield sim


def _client(sim: NicepaySimulator, http: httpx.Client) -> NicepayClient:
    credentials = NicepayCredentials(imid=IMID, merchant_key=KEY_TEXT, base_url=sim.nicepay_url)
    return NicepayClient(
        http,
        credentials,
        clock=ManualClock(START),
        inquiry_retry=InquiryRetry(attempts=1),
        sleep=lambda _: None,
    )


def test_inquiry_over_a_real_socket(served: NicepaySimulator) -> None:
    with httpx.Client(timeout=httpx.Timeout(5.0)) as http:
        client = _client(served, http)
        tx_id = client.register(registration()).tx_id or ""
        served.approve(tx_id)
        response = client.inquiry(tx_id, "ORD-1", "12000")
    assert (response.tx_id, response.status) == (tx_id, "0")


def test_a_real_read_timeout_becomes_provider_timeout(served: NicepaySimulator) -> None:
    with httpx.Client(timeout=httpx.Timeout(5.0, read=0.2)) as http:
        client = _client(served, http)
        tx_id = client.register(registration()).tx_id or ""
        served.faults.response(INQUIRY_PATH, slow=1.0)  # NICEPAY answers too late
        with pytest.raises(ProviderTimeout):
            client.inquiry(tx_id, "ORD-1", "12000")
