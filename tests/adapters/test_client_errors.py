"""NicepayClient's failures: every resultCd, HTTP status and bad body typed; no secret leaks.

NICEPAY is the simulator in-process; each failure is a response fault armed on it, and a
connection refused is a real one, on a loopback port nothing listens on.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import httpx
import pytest

from adapters.errors import (
    DuplicateReference,
    FieldUndefined,
    InvalidToken,
    MalformedResponse,
    NicepayUnavailable,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)
from adapters.nicepay.client import INQUIRY_PATH, REGISTRATION_PATH, NicepayClient
from adapters.nicepay.config import InquiryRetry, NicepayCredentials, simulator_base_url
from adapters.nicepay.result_codes import RESULT_CODES
from fsm.clock import ManualClock
from tests.adapters.mock_nicepay import Nicepay, harness
from tests.adapters.values import (
    CREDENTIALS,
    IMID,
    KEY_TEXT,
    START,
    TXID,
    refusal,
    registration,
)

# --- failure mapping --------------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(RESULT_CODES))
def test_every_documented_result_code_maps_to_its_class(nicepay: Nicepay, code: str) -> None:
    spec = RESULT_CODES[code]
    h = harness(nicepay, retry=InquiryRetry(attempts=1))
    h.sim.faults.response(INQUIRY_PATH, body=refusal(code, f"message {code}"))
    with pytest.raises(spec.error) as caught:
        h.client.inquiry(TXID, "ORD-1", "12000")
    error = caught.value
    assert error.retryable is spec.retryable
    assert error.retryable is (code in {"1001", "1002", "1003", "1004", "9002"})
    assert (error.provider, error.provider_code, error.http_status) == ("nicepay", code, 200)
    assert error.provider_message == f"message {code}"
    assert isinstance(error, NicepayUnavailable if spec.retryable else ProviderRejected)


def test_an_undocumented_result_code_is_a_plain_rejection(nicepay: Nicepay) -> None:
    h = harness(nicepay)
    h.sim.faults.response(INQUIRY_PATH, body=refusal("9999", "new code"))
    with pytest.raises(ProviderRejected) as caught:
        h.client.inquiry(TXID, "ORD-1", "12000")
    assert type(caught.value) is ProviderRejected
    assert not caught.value.retryable
    assert len(h.line.requests) == 1


@pytest.mark.parametrize(
    ("code", "message", "field"),
    [
        ("9013", "Undefined billingPhone", "billingPhone"),  # the message wins over the order
        ("9017", "billingPhone is Undefined", "billingPhone"),
        ("9024", "Undefined [userAgentX]", "userAgentX"),
        ("9027", "Undefined", "billingPostCd"),  # nothing named: the documented order
        ("9028", "Undefined [parameter]", "billingCountry"),
    ],
)
def test_missing_field_names_the_field(
    nicepay: Nicepay, code: str, message: str, field: str
) -> None:
    h = harness(nicepay)
    h.sim.faults.response(REGISTRATION_PATH, body=refusal(code, message))
    with pytest.raises(FieldUndefined) as caught:
        h.client.register(registration())
    assert caught.value.field == field


def test_duplicate_reference_is_typed(nicepay: Nicepay) -> None:
    h = harness(nicepay)
    h.client.register(registration())
    with pytest.raises(DuplicateReference):  # NICEPAY's own answer to a second ORD-1: 9009
        h.client.register(registration())


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429])
def test_server_errors_are_retryable(nicepay: Nicepay, status: int) -> None:
    h = harness(nicepay, retry=InquiryRetry(attempts=1))
    h.sim.faults.response(INQUIRY_PATH, status=status, body=b"<html>oops</html>")
    with pytest.raises(ProviderUnavailable) as caught:
        h.client.inquiry(TXID, "ORD-1", "12000")
    assert caught.value.retryable
    assert caught.value.http_status == status


@pytest.mark.parametrize("status", [301, 400, 401, 403, 404])
def test_other_http_errors_are_not_retryable(nicepay: Nicepay, status: int) -> None:
    h = harness(nicepay)
    h.sim.faults.response(INQUIRY_PATH, status=status, body={"resultCd": "0000"})
    with pytest.raises(ProviderRejected) as caught:
        h.client.inquiry(TXID, "ORD-1", "12000")
    assert not caught.value.retryable
    assert caught.value.http_status == status
    assert len(h.line.requests) == 1


@pytest.mark.parametrize(
    "body",
    [
        b"<html>maintenance</html>",
        b"\xff\xfe",
        ["0000"],
        {"resultMsg": "no code"},
        {"resultCd": "0000", "resultMsg": "ok but no tXid"},
    ],
)
def test_unusable_bodies_are_malformed_and_retryable(nicepay: Nicepay, body: Any) -> None:
    h = harness(nicepay, retry=InquiryRetry(attempts=1))
    h.sim.faults.response(INQUIRY_PATH, body=body)
    with pytest.raises(MalformedResponse) as caught:
        h.client.inquiry(TXID, "ORD-1", "12000")
    assert caught.value.retryable
    assert isinstance(caught.value, ProviderUnavailable)


def closed_port() -> int:
    """A loopback port nothing listens on: a connection to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_a_connection_failure_is_unavailable_not_a_timeout() -> None:
    credentials = NicepayCredentials(
        imid=IMID, merchant_key=KEY_TEXT, base_url=simulator_base_url(closed_port())
    )
    with httpx.Client(timeout=httpx.Timeout(5.0)) as http:
        client = NicepayClient(
            http, credentials, clock=ManualClock(START), inquiry_retry=InquiryRetry(attempts=1)
        )
        with pytest.raises(ProviderUnavailable) as caught:
            client.inquiry(TXID, "ORD-1", "12000")
    assert not isinstance(caught.value, ProviderTimeout)
    assert caught.value.retryable


# --- logging and secrecy ----------------------------------------------------------------------


def test_one_log_record_per_call_with_ids_and_no_secrets(
    nicepay: Nicepay, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness(nicepay)
    with caplog.at_level(logging.DEBUG, logger="adapters"):
        tx_id = h.client.register(registration()).tx_id or ""
        with pytest.raises(InvalidToken):
            h.client.inquiry(tx_id, "ORD-1", "99000")  # not the registered amount: 9010

    calls = [r for r in caplog.records if r.name == "adapters.nicepay.client"]
    assert [(r.operation, r.result_cd, r.levelno) for r in calls] == [  # type: ignore[attr-defined]
        ("registration", "0000", logging.INFO),
        ("inquiry", "9010", logging.WARNING),
    ]
    assert calls[0].tx_id == tx_id  # type: ignore[attr-defined]
    assert calls[0].reference_no == "ORD-1"  # type: ignore[attr-defined]
    assert isinstance(calls[0].elapsed_ms, float)  # type: ignore[attr-defined]
    tokens = [body["merchantToken"] for body in h.line.bodies()]
    for record in caplog.records:
        text = record.getMessage() + repr(record.__dict__)
        assert KEY_TEXT not in text
        assert all(token not in text for token in tokens)
        assert "cartData" not in text


def _failures() -> list[dict[str, Any]]:
    echo = f"token {KEY_TEXT} rejected"  # a provider echoing the key must not leak it
    return [
        {"timeout": True},
        {"status": 500, "body": KEY_TEXT.encode()},
        {"status": 400, "body": KEY_TEXT.encode()},
        {"body": f"<html>{KEY_TEXT}</html>".encode()},
        {"body": {"resultCd": "0000", "echo": KEY_TEXT}},
        {"body": refusal("9010", echo)},
        {"body": refusal("9013", echo)},
        {"body": refusal("9009", echo)},
        {"body": refusal("1003", echo)},
    ]


@pytest.mark.parametrize("fault", _failures())
def test_the_key_never_appears_in_errors_or_logs(
    nicepay: Nicepay, fault: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    h = harness(nicepay)
    h.sim.faults.response(REGISTRATION_PATH, **fault)
    with caplog.at_level(logging.DEBUG), pytest.raises(ProviderError) as caught:
        h.client.register(registration())
    token = h.line.bodies()[0]["merchantToken"]
    error = caught.value
    for text in (str(error), repr(error), repr(error.__dict__), repr(error.args)):
        assert KEY_TEXT not in text
        assert token not in text
    assert KEY_TEXT not in caplog.text
    assert token not in caplog.text


def test_the_key_never_appears_when_the_connection_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    base_url = simulator_base_url(closed_port())
    credentials = NicepayCredentials(imid=IMID, merchant_key=KEY_TEXT, base_url=base_url)
    with httpx.Client(timeout=httpx.Timeout(5.0)) as http:
        client = NicepayClient(http, credentials, clock=ManualClock(START))
        with caplog.at_level(logging.DEBUG), pytest.raises(ProviderError) as caught:
            client.register(registration())
    error = caught.value
    for text in (str(error), repr(error), repr(error.__dict__), repr(error.args), caplog.text):
        assert KEY_TEXT not in text


def test_the_client_exposes_its_credentials_without_the_key(nicepay: Nicepay) -> None:
    client = harness(nicepay).client
    assert client.credentials is CREDENTIALS
    assert client.imid == IMID
    assert KEY_TEXT not in repr(client.credentials)


def test_the_key_never_appears_in_dumps_or_reprs(nicepay: Nicepay) -> None:
    h = harness(nicepay)
    registered = h.client.register(registration())
    tx_id = registered.tx_id or ""
    dumps = [
        repr(h.client),
        repr(CREDENTIALS),
        str(CREDENTIALS),
        CREDENTIALS.model_dump_json(),
        repr(CREDENTIALS.model_dump()),
        registration().model_dump_json(),
        registered.model_dump_json(),
        h.client.inquiry(tx_id, "ORD-1", "12000").model_dump_json(),
        h.client.payment_step(tx_id, "ORD-1", "12000", "https://m.example/cb").model_dump_json(),
    ]
    for text in dumps:
        assert KEY_TEXT not in text
