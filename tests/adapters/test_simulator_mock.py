"""The simulator in-process: its ``MockTransport`` answers as the loopback server does, response
faults apply to both, and an armed answer (a body of its own, fields replaced) reaches the client.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from adapters.errors import ProviderTimeout, WalletRefused
from adapters.nicepay.client import INQUIRY_PATH, REGISTRATION_PATH, NicepayClient
from adapters.nicepay.config import NicepayCredentials
from adapters.simulator import Faults, NicepaySimulator
from adapters.simulator._asgi import SIMULATOR_HEADER
from fsm.clock import ManualClock
from tests.adapters.mock_nicepay import Nicepay, harness, new_simulator, sim_config
from tests.adapters.values import BASE, IMID, KEY_TEXT, START, ok, refusal, registration

INQUIRY_URL = BASE + INQUIRY_PATH


def test_the_transport_answers_like_the_simulator_and_marks_its_answers(nicepay: Nicepay) -> None:
    with httpx.Client(transport=nicepay.sim.mock_transport()) as http:
        refused = http.post(INQUIRY_URL, json={})
        unknown = http.get("http://nicepay.test/nowhere")
    assert (refused.status_code, refused.json()["resultCd"]) == (200, "9011")  # no iMid
    assert refused.headers[SIMULATOR_HEADER] == "1"
    assert unknown.status_code == 404

    h = harness(nicepay)
    tx_id = h.client.register(registration()).tx_id or ""
    assert nicepay.sim.transaction(tx_id).state == "initiated"
    nicepay.sim.approve(tx_id)
    assert h.client.inquiry(tx_id, "ORD-1", "12000").status == "0"


def test_a_simulator_not_open_answers_503() -> None:
    sim = new_simulator(ManualClock(START))
    with httpx.Client(transport=sim.mock_transport()) as http:
        assert http.post(INQUIRY_URL, json={}).status_code == 503


def test_a_timeout_loses_the_answer_of_a_request_carried_out(nicepay: Nicepay) -> None:
    h = harness(nicepay)
    nicepay.sim.faults.response(REGISTRATION_PATH, timeout=True)
    with pytest.raises(ProviderTimeout):
        h.client.register(registration())
    assert nicepay.sim.transaction(reference_no="ORD-1").state == "initiated"


def test_a_timeout_armed_not_to_process_leaves_nothing_at_nicepay(nicepay: Nicepay) -> None:
    h = harness(nicepay)
    nicepay.sim.faults.response(REGISTRATION_PATH, timeout=True, process=False)
    with pytest.raises(ProviderTimeout):
        h.client.register(registration())
    with pytest.raises(KeyError):
        nicepay.sim.transaction(reference_no="ORD-1")


def test_a_body_answers_as_armed_and_carries_nothing_out(nicepay: Nicepay) -> None:
    faults = nicepay.sim.faults
    faults.response(INQUIRY_PATH, status=202, body={"resultCd": "0000", "n": 1})
    faults.response(INQUIRY_PATH, body=b"<html>busy</html>")
    with httpx.Client(transport=nicepay.sim.mock_transport()) as http:
        as_json, as_bytes = http.post(INQUIRY_URL), http.post(INQUIRY_URL)
    assert (as_json.status_code, as_json.json()) == (202, {"resultCd": "0000", "n": 1})
    assert as_json.headers["content-type"] == "application/json"
    assert (as_bytes.status_code, as_bytes.text) == (200, "<html>busy</html>")

    h = harness(nicepay)
    faults.response(REGISTRATION_PATH, body=refusal("9001", "Registration failed"))
    with pytest.raises(WalletRefused):
        h.client.register(registration())
    with pytest.raises(KeyError):
        nicepay.sim.transaction(reference_no="ORD-1")
    faults.response(REGISTRATION_PATH, body=ok(tXid="T-1"), process=True)
    assert h.client.register(registration()).tx_id == "T-1"  # NICEPAY's own tXid went unseen
    assert nicepay.sim.transaction(reference_no="ORD-1").tx_id != "T-1"


def test_fields_replace_parts_of_the_answer_to_a_request_carried_out(nicepay: Nicepay) -> None:
    h = harness(nicepay)
    tx_id = h.client.register(registration()).tx_id or ""
    nicepay.sim.faults.response(INQUIRY_PATH, fields={"status": None, "extra": "x"})
    odd = h.client.inquiry(tx_id, "ORD-1", "12000")
    assert (odd.tx_id, odd.status) == (tx_id, None)
    assert h.client.inquiry(tx_id, "ORD-1", "12000").status == "9"  # used up: its own answer


def test_fields_replace_parts_of_the_answer_on_loopback_too() -> None:
    sim = NicepaySimulator(sim_config(ManualClock(START)))
    with sim.serve() as served, httpx.Client(timeout=httpx.Timeout(5.0)) as http:
        credentials = NicepayCredentials(
            imid=IMID, merchant_key=KEY_TEXT, base_url=served.nicepay_url
        )
        client = NicepayClient(http, credentials, clock=ManualClock(START))
        tx_id = client.register(registration()).tx_id or ""
        served.faults.response(INQUIRY_PATH, fields={"status": "7"}, times=None)
        assert [client.inquiry(tx_id, "ORD-1", "12000").status for _ in "ab"] == ["7", "7"]


@pytest.mark.parametrize(
    "fault",
    [
        {},
        {"status": 200},
        {"status": 600, "body": b"x"},
        {"status": 199, "body": b"x"},
        {"body": b"x", "fields": {"status": "0"}},
        {"fields": {"status": "0"}, "process": False},
    ],
    ids=["nothing", "200-without-body", "600", "199", "body-and-fields", "fields-unprocessed"],
)
def test_a_response_fault_that_cannot_happen_is_refused(fault: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"give|status|fields"):
        Faults().response(INQUIRY_PATH, **fault)


def test_notifications_go_out_through_the_transport_given() -> None:
    received: list[httpx.Request] = []

    def merchant(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(200, text="OK")

    sim = NicepaySimulator(
        sim_config(ManualClock(START)), notification_transport=httpx.MockTransport(merchant)
    )
    sim.open()
    try:
        h = harness(Nicepay(sim, ManualClock(START)))
        tx_id = h.client.register(registration()).tx_id or ""
        sim.approve(tx_id)
        (delivery,) = sim.wait_for_deliveries(1)
    finally:
        sim.close()
    assert (delivery.kind, delivery.status_code, delivery.error) == ("payment", 200, None)
    (request,) = received
    assert str(request.url) == "https://merchant.example/nicepay/notify"
    assert dict(parse_qsl(request.content.decode()))["tXid"] == tx_id
