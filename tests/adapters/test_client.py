"""NicepayClient on the simulator in-process: exact request bodies, every failure class, retries.

An answer NICEPAY's own checks would not give (a result code, a garbled body) is armed as a
response fault; everything else is the simulator's own answer.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from pydantic import ValidationError

from adapters.errors import (
    CancelRefused,
    InvalidToken,
    MalformedResponse,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
)
from adapters.nicepay.client import (
    CANCEL_PATH,
    INQUIRY_PATH,
    PAYMENT_PATH,
    REGISTRATION_PATH,
    NicepayClient,
)
from adapters.nicepay.config import Environment, InquiryRetry, NicepayCredentials
from adapters.nicepay.messages import LinkEnableRequest, LinkInitiateRequest
from fsm.clock import ManualClock
from fsm.errors import ConfigurationError
from tests.adapters.mock_nicepay import Nicepay, harness
from tests.adapters.values import (
    BASE,
    CREDENTIALS,
    IMID,
    KEY_TEXT,
    ORIGIN,
    START,
    START_TS,
    TXID,
    billing,
    ok,
    refusal,
    registration,
    sha,
)

# --- construction -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "timeout_setting",
    [None, httpx.Timeout(5.0, pool=None), httpx.Timeout(None, connect=3.0)],
)
def test_a_client_without_every_timeout_is_refused(timeout_setting: httpx.Timeout | None) -> None:
    http = httpx.Client(timeout=timeout_setting)
    with pytest.raises(ConfigurationError, match="timeout"):
        NicepayClient(http, CREDENTIALS, clock=ManualClock(START))


def test_inquiry_retry_policy_is_validated() -> None:
    with pytest.raises(ConfigurationError):
        InquiryRetry(attempts=0)
    with pytest.raises(ConfigurationError):
        InquiryRetry(base_delay=5.0, max_delay=1.0)


# --- registration -----------------------------------------------------------------------------


def test_register_sends_every_field_as_a_string_with_t1(nicepay: Nicepay) -> None:
    h = harness(nicepay)
    response = h.client.register(registration())

    assert response.tx_id == h.sim.transaction(reference_no="ORD-1").tx_id
    (request,) = h.line.requests
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/direct/v2/registration"
    assert request.headers["content-type"] == "application/json"
    body = h.line.bodies()[0]
    assert all(isinstance(value, str) for value in body.values())
    assert body["merchantToken"] == sha(START_TS, IMID, "ORD-1", "12000", KEY_TEXT)
    assert {k: body[k] for k in ("timeStamp", "iMid", "payMethod", "currency", "amt")} == {
        "timeStamp": START_TS,
        "iMid": IMID,
        "payMethod": "05",
        "currency": "IDR",
        "amt": "12000",
    }
    assert body["referenceNo"] == "ORD-1"
    assert body["mitraCd"] == "DANA"
    assert body["billingNm"] == "Budi Santoso"
    assert body["billingPostCd"] == "10220"
    assert body["userIP"] == "127.0.0.1"
    assert body["dbProcessUrl"] == "https://merchant.example/nicepay/notify"
    assert body["payValidDt"] == body["payValidTm"] == ""


def test_register_sends_cart_data_as_one_compact_string_that_adds_up(nicepay: Nicepay) -> None:
    h = harness(nicepay)
    h.client.register(registration())
    cart_text = h.line.bodies()[0]["cartData"]

    assert isinstance(cart_text, str)
    assert " " not in cart_text.replace("Budi Santoso", "")
    cart = json.loads(cart_text)
    assert cart["count"] == "2"
    assert all(isinstance(v, str) for item in cart["item"] for v in item.values())
    total = sum(int(i["goods_amt"]) * int(i["goods_quantity"]) for i in cart["item"])
    assert str(total) == "12000"


def test_register_is_sent_once_even_after_a_timeout(nicepay: Nicepay) -> None:
    h = harness(nicepay)
    h.sim.faults.response(REGISTRATION_PATH, timeout=True)
    with pytest.raises(ProviderTimeout) as caught:
        h.client.register(registration())
    assert caught.value.retryable
    assert isinstance(caught.value, TimeoutError)
    assert len(h.line.requests) == 1


def test_register_is_not_retried_after_a_server_error(nicepay: Nicepay) -> None:
    h = harness(nicepay)
    h.sim.faults.response(REGISTRATION_PATH, status=503)
    with pytest.raises(ProviderUnavailable):
        h.client.register(registration())
    assert len(h.line.requests) == 1


def test_a_cart_that_does_not_add_up_is_refused_before_any_request(nicepay: Nicepay) -> None:
    h = harness(nicepay)
    with pytest.raises(ValidationError, match="cartData adds up to 12000"):
        h.client.register(registration(amount="13000"))
    assert h.line.requests == []


def test_the_configured_base_url_is_used(nicepay: Nicepay) -> None:
    cloud = NicepayCredentials(
        imid=IMID, merchant_key=KEY_TEXT, base_url=Environment.CLOUD_PRODUCTION
    )
    h = harness(nicepay, credentials=cloud)
    h.client.register(registration())
    assert str(h.line.requests[0].url) == (
        "https://services.nicepay.co.id/nicepay/direct/v2/registration"
    )


# --- payment step -----------------------------------------------------------------------------


def test_payment_step_is_built_not_sent_with_a_fresh_t1(nicepay: Nicepay) -> None:
    h = harness(nicepay)
    h.clock.advance(timedelta(minutes=2))
    callback = "https://merchant.example/return?order=ORD-1&x=a b"
    step = h.client.payment_step(TXID, "ORD-1", "12000", callback)

    assert h.line.requests == []
    fresh = "20250201003200"
    assert step.fields == {
        "timeStamp": fresh,
        "tXid": TXID,
        "merchantToken": sha(fresh, IMID, "ORD-1", "12000", KEY_TEXT),
        "callBackUrl": callback,
    }
    assert step.url == f"{BASE}/direct/v2/payment"
    assert not step.returns_json
    parts = urlsplit(step.get_url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == step.url
    assert dict(parse_qsl(parts.query)) == step.fields
    assert "callBackUrl=https%3A%2F%2Fmerchant.example%2Freturn%3Forder%3DORD-1%26x%3Da" in (
        step.get_url
    )


def test_payment_step_for_shopeepay_asks_for_json(nicepay: Nicepay) -> None:
    h = harness(nicepay)
    step = h.client.payment_step(TXID, "ORD-1", 12000, "https://m.example/cb", return_json=True)
    assert step.returns_json
    assert step.fields["returnJsonFormat"] == "1"
    assert "returnJsonFormat=1" in step.get_url


def test_payment_links_fetches_the_shopeepay_json_once(nicepay: Nicepay) -> None:
    h = harness(nicepay)
    tx_id = h.client.register(registration(mitra_cd="ESHP")).tx_id or ""
    step = h.client.payment_step(tx_id, "ORD-1", "12000", "https://m.example/cb", return_json=True)
    answer = h.client.payment_links(step)

    page = f"{ORIGIN}/partner/shopeepay?tXid={tx_id}"  # the simulator's ShopeePay page
    assert (answer.app_url, answer.web_url) == (f"{page}&via=app", page)
    (request,) = h.line.sent(PAYMENT_PATH)
    assert request.method == "POST"  # a form keeps the token out of logged URLs
    assert str(request.url) == step.url
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert dict(parse_qsl(request.content.decode())) == step.fields


def test_payment_links_accepts_json_without_a_result_code(nicepay: Nicepay) -> None:
    h = harness(nicepay)
    h.sim.faults.response(PAYMENT_PATH, body={"redirectUrlHttp": "https://shopee.test/p"})
    step = h.client.payment_step(TXID, "ORD-1", "12000", "https://m.example/cb", return_json=True)
    assert h.client.payment_links(step).redirect_url == "https://shopee.test/p"


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ({"body": refusal("9010", "bad token")}, InvalidToken),
        ({"body": ok(tXid=TXID)}, MalformedResponse),
        ({"body": b"<html>redirecting</html>"}, MalformedResponse),
        ({"timeout": True}, ProviderTimeout),
    ],
)
def test_payment_links_failures_are_typed_and_not_retried(
    nicepay: Nicepay, fault: dict[str, Any], error: type[ProviderError]
) -> None:
    h = harness(nicepay)
    h.sim.faults.response(PAYMENT_PATH, **fault)
    step = h.client.payment_step(TXID, "ORD-1", "12000", "https://m.example/cb", return_json=True)
    with pytest.raises(error):
        h.client.payment_links(step)
    assert len(h.line.requests) == 1


def test_payment_links_needs_a_json_step(nicepay: Nicepay) -> None:
    h = harness(nicepay)
    step = h.client.payment_step(TXID, "ORD-1", "12000", "https://m.example/cb")
    with pytest.raises(ValueError, match="return_json"):
        h.client.payment_links(step)
    assert h.line.requests == []


@pytest.mark.parametrize("amount", ["12000.00", "12,000", "-1", "", "1234567890123"])
def test_payment_step_refuses_inexact_amounts(nicepay: Nicepay, amount: str) -> None:
    with pytest.raises(ValueError, match="digits"):
        harness(nicepay).client.payment_step(TXID, "ORD-1", amount, "https://m.example/cb")


# --- inquiry ----------------------------------------------------------------------------------


def test_inquiry_sends_t1_and_parses_the_status(nicepay: Nicepay) -> None:
    h = harness(nicepay)
    answer = ok(tXid=TXID, status="2", amt="12000", cancelAmt=2000, cardNo=None, x="y")
    h.sim.faults.response(INQUIRY_PATH, body=answer)
    response = h.client.inquiry(TXID, "ORD-1", "12000")

    assert response.status == "2"
    assert response.cancel_amount == "2000"
    (body,) = h.line.bodies()
    assert body == {
        "timeStamp": START_TS,
        "tXid": TXID,
        "iMid": IMID,
        "referenceNo": "ORD-1",
        "amt": "12000",
        "merchantToken": sha(START_TS, IMID, "ORD-1", "12000", KEY_TEXT),
    }
    assert str(h.line.requests[0].url) == f"{BASE}/direct/v2/inquiry"


def test_inquiry_retries_with_backoff_and_a_fresh_token_per_try(nicepay: Nicepay) -> None:
    h = harness(nicepay)
    tx_id = h.client.register(registration()).tx_id or ""
    h.sim.approve(tx_id)
    h.sim.faults.response(INQUIRY_PATH, timeout=True)
    h.sim.faults.response(INQUIRY_PATH, status=502)
    assert h.client.inquiry(tx_id, "ORD-1", "12000").status == "0"

    assert h.sleeps == [1.0, 2.0]
    bodies = [json.loads(request.content) for request in h.line.sent(INQUIRY_PATH)]
    stamps = [body["timeStamp"] for body in bodies]
    assert stamps == ["20250201003000", "20250201003001", "20250201003003"]
    for body in bodies:
        assert body["merchantToken"] == sha(body["timeStamp"], IMID, "ORD-1", "12000", KEY_TEXT)


def test_inquiry_retries_are_bounded(nicepay: Nicepay) -> None:
    retry = InquiryRetry(attempts=5, base_delay=1.0, max_delay=3.0)
    h = harness(nicepay, retry=retry)
    h.sim.faults.response(INQUIRY_PATH, status=503, times=5)
    with pytest.raises(ProviderUnavailable) as caught:
        h.client.inquiry(TXID, "ORD-1", "12000")
    assert caught.value.http_status == 503
    assert len(h.line.requests) == 5
    assert h.sleeps == [1.0, 2.0, 3.0, 3.0]


@pytest.mark.parametrize("code", ["1001", "1002", "1003", "1004", "9002"])
def test_inquiry_retries_transport_result_codes(nicepay: Nicepay, code: str) -> None:
    h = harness(nicepay)
    h.sim.faults.response(INQUIRY_PATH, body=refusal(code, "busy"))
    h.sim.faults.response(INQUIRY_PATH, body=ok(tXid=TXID, status="3"))
    assert h.client.inquiry(TXID, "ORD-1", "12000").status == "3"
    assert len(h.line.requests) == 2


def test_inquiry_does_not_retry_a_business_refusal(nicepay: Nicepay) -> None:
    h = harness(nicepay)
    tx_id = h.client.register(registration()).tx_id or ""
    with pytest.raises(InvalidToken):
        h.client.inquiry(tx_id, "ORD-1", "13000")  # NICEPAY's own answer: 9010
    assert len(h.line.sent(INQUIRY_PATH)) == 1
    assert h.sleeps == []


def test_inquiry_without_status_is_parsed_with_status_none(nicepay: Nicepay) -> None:
    h = harness(nicepay)
    h.sim.faults.response(INQUIRY_PATH, body=ok(tXid=TXID))
    assert h.client.inquiry(TXID, "ORD-1", 12000).status is None


# --- cancel -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("partial", "cancel_type"), [(False, "1"), (True, "2")])
def test_cancel_sends_t2_over_the_cancelled_amount(
    nicepay: Nicepay, partial: bool, cancel_type: str
) -> None:
    h = harness(nicepay)
    h.sim.faults.response(CANCEL_PATH, body=ok(tXid=TXID, canceltXid="CANCEL-1", amt="2000"))
    response = h.client.cancel(TXID, "ORD-1", "2000", partial=partial, reason="out of stock")

    assert response.cancel_tx_id == "CANCEL-1"
    (body,) = h.line.bodies()
    assert body == {
        "timeStamp": START_TS,
        "tXid": TXID,
        "iMid": IMID,
        "payMethod": "05",
        "cancelType": cancel_type,
        "amt": "2000",
        "referenceNo": "ORD-1",
        "cancelMsg": "out of stock",
        "merchantToken": sha(START_TS, IMID, TXID, "2000", KEY_TEXT),
    }
    assert str(h.line.requests[0].url) == f"{BASE}/direct/v2/cancel"


def test_cancel_is_never_retried(nicepay: Nicepay) -> None:
    h = harness(nicepay)
    h.sim.faults.response(CANCEL_PATH, timeout=True)
    with pytest.raises(ProviderTimeout):
        h.client.cancel(TXID, "ORD-1", "12000", partial=False)
    assert len(h.line.requests) == 1


def test_cancel_refusal_is_typed(nicepay: Nicepay) -> None:
    h = harness(nicepay)
    h.sim.faults.response(CANCEL_PATH, body=refusal("9334", "cancel period exceeded"))
    with pytest.raises(CancelRefused) as caught:
        h.client.cancel(TXID, "ORD-1", "12000", partial=False)
    assert caught.value.provider_code == "9334"
    assert not caught.value.retryable


# --- AstraPay forms ---------------------------------------------------------------------------


def test_link_enable_builds_a_t4_form_with_extra_fields(nicepay: Nicepay) -> None:
    h = harness(nicepay)
    request = LinkEnableRequest(
        reference_no="LINK-1",
        billing_name="Budi",
        billing_phone="08123456789",
        billing_email="budi@example.id",
        db_process_url="https://m.example/notify",
        user_ip="127.0.0.1",
        callback_url="https://m.example/linked",
        extra_fields={"futureField": "x"},
    )
    form = h.client.link_enable(request)

    assert h.line.requests == []
    assert form.method == "POST"
    assert form.url == f"{BASE}/api/linkEnable.do"
    assert form.fields["merchantToken"] == sha(IMID, "LINK-1", "08123456789", KEY_TEXT)
    assert form.fields["timeStamp"] == START_TS
    assert form.fields["iMid"] == IMID
    assert form.fields["mitraCd"] == "ASTR"
    assert form.fields["payMethod"] == "05"
    assert form.fields["callBackUrl"] == "https://m.example/linked"
    assert form.fields["futureField"] == "x"
    assert all(isinstance(value, str) for value in form.fields.values())


def test_link_initiate_builds_a_t5_form_with_the_mandate(nicepay: Nicepay) -> None:
    h = harness(nicepay)
    request = LinkInitiateRequest(
        mandate_id="1234567890",
        amount="25000",
        reference_no="ORD-9",
        goods_name="Tea",
        billing=billing(),
        db_process_url="https://m.example/notify",
    )
    form = h.client.link_initiate(request)

    assert h.line.requests == []
    assert form.url == f"{BASE}/api/linkInitiate.do"
    assert form.fields["merchantToken"] == sha(IMID, "ORD-9", "25000", KEY_TEXT)
    assert form.fields["mandateID"] == "1234567890"
    assert form.fields["amt"] == "25000"
    assert form.fields["currency"] == "IDR"
    assert form.fields["billingPhone"] == "08123456789"
