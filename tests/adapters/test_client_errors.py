"""NicepayClient's failures: every resultCd, HTTP status and bad body typed; no secret leaks."""

from __future__ import annotations

import logging

import httpx
import pytest

from adapters.errors import (
    DuplicateReference,
    InvalidToken,
    MalformedResponse,
    MissingField,
    NicepayUnavailable,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)
from adapters.nicepay.config import InquiryRetry
from adapters.nicepay.result_codes import RESULT_CODES
from tests.adapters.nicepay_fake import (
    BASE,
    CREDENTIALS,
    IMID,
    KEY_TEXT,
    TXID,
    harness,
    ok,
    refused,
    registered,
    registration,
    timeout,
)

# --- failure mapping --------------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(RESULT_CODES))
def test_every_documented_result_code_maps_to_its_class(code: str) -> None:
    spec = RESULT_CODES[code]
    h = harness(refused(code, f"message {code}"), retry=InquiryRetry(attempts=1))
    with pytest.raises(spec.error) as caught:
        h.client.inquiry(TXID, "ORD-1", "12000")
    error = caught.value
    assert error.retryable is spec.retryable
    assert error.retryable is (code in {"1001", "1002", "1003", "1004", "9002"})
    assert (error.provider, error.provider_code, error.http_status) == ("nicepay", code, 200)
    assert error.provider_message == f"message {code}"
    assert isinstance(error, NicepayUnavailable if spec.retryable else ProviderRejected)


def test_an_undocumented_result_code_is_a_plain_rejection() -> None:
    h = harness(refused("9999", "new code"))
    with pytest.raises(ProviderRejected) as caught:
        h.client.inquiry(TXID, "ORD-1", "12000")
    assert type(caught.value) is ProviderRejected
    assert not caught.value.retryable
    assert len(h.fake.requests) == 1


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
def test_missing_field_names_the_field(code: str, message: str, field: str) -> None:
    h = harness(refused(code, message))
    with pytest.raises(MissingField) as caught:
        h.client.register(registration())
    assert caught.value.field == field


def test_duplicate_reference_is_typed() -> None:
    h = harness(refused("9009", "Duplicate referenceNo"))
    with pytest.raises(DuplicateReference):
        h.client.register(registration())


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429])
def test_server_errors_are_retryable(status: int) -> None:
    h = harness(httpx.Response(status, text="<html>oops</html>"), retry=InquiryRetry(attempts=1))
    with pytest.raises(ProviderUnavailable) as caught:
        h.client.inquiry(TXID, "ORD-1", "12000")
    assert caught.value.retryable
    assert caught.value.http_status == status


@pytest.mark.parametrize("status", [301, 400, 401, 403, 404])
def test_other_http_errors_are_not_retryable(status: int) -> None:
    h = harness(httpx.Response(status, json={"resultCd": "0000"}), ok(tXid=TXID, status="0"))
    with pytest.raises(ProviderRejected) as caught:
        h.client.inquiry(TXID, "ORD-1", "12000")
    assert not caught.value.retryable
    assert caught.value.http_status == status
    assert len(h.fake.requests) == 1


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(200, text="<html>maintenance</html>"),
        httpx.Response(200, content=b"\xff\xfe"),
        httpx.Response(200, json=["0000"]),
        httpx.Response(200, json={"resultMsg": "no code"}),
        httpx.Response(200, json={"resultCd": "0000", "resultMsg": "ok but no tXid"}),
    ],
)
def test_unusable_bodies_are_malformed_and_retryable(reply: httpx.Response) -> None:
    h = harness(reply, retry=InquiryRetry(attempts=1))
    with pytest.raises(MalformedResponse) as caught:
        h.client.inquiry(TXID, "ORD-1", "12000")
    assert caught.value.retryable
    assert isinstance(caught.value, ProviderUnavailable)


def test_a_connection_failure_is_unavailable_not_a_timeout() -> None:
    h = harness(httpx.ConnectError("refused"), retry=InquiryRetry(attempts=1))
    with pytest.raises(ProviderUnavailable) as caught:
        h.client.inquiry(TXID, "ORD-1", "12000")
    assert not isinstance(caught.value, ProviderTimeout)
    assert caught.value.retryable


# --- logging and secrecy ----------------------------------------------------------------------


def test_one_log_record_per_call_with_ids_and_no_secrets(caplog: pytest.LogCaptureFixture) -> None:
    h = harness(registered(), refused("9010", "bad token"))
    with caplog.at_level(logging.DEBUG, logger="adapters"):
        h.client.register(registration())
        with pytest.raises(InvalidToken):
            h.client.inquiry(TXID, "ORD-1", "12000")

    calls = [r for r in caplog.records if r.name == "adapters.nicepay.client"]
    assert [(r.operation, r.result_cd, r.levelno) for r in calls] == [  # type: ignore[attr-defined]
        ("registration", "0000", logging.INFO),
        ("inquiry", "9010", logging.WARNING),
    ]
    assert calls[0].tx_id == TXID  # type: ignore[attr-defined]
    assert calls[0].reference_no == "ORD-1"  # type: ignore[attr-defined]
    assert isinstance(calls[0].elapsed_ms, float)  # type: ignore[attr-defined]
    tokens = [body["merchantToken"] for body in h.fake.bodies()]
    for record in caplog.records:
        text = record.getMessage() + repr(record.__dict__)
        assert KEY_TEXT not in text
        assert all(token not in text for token in tokens)
        assert "cartData" not in text


def _failures() -> list[httpx.Response | Exception]:
    echo = f"token {KEY_TEXT} rejected"  # a provider echoing the key must not leak it
    return [
        timeout(),
        httpx.ConnectError(f"cannot reach {BASE}"),
        httpx.Response(500, text=KEY_TEXT),
        httpx.Response(400, text=KEY_TEXT),
        httpx.Response(200, text=f"<html>{KEY_TEXT}</html>"),
        httpx.Response(200, json={"resultCd": "0000", "echo": KEY_TEXT}),
        refused("9010", echo),
        refused("9013", echo),
        refused("9009", echo),
        refused("1003", echo),
    ]


@pytest.mark.parametrize("reply", _failures())
def test_the_key_never_appears_in_errors_or_logs(
    reply: httpx.Response | Exception, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness(reply)
    with caplog.at_level(logging.DEBUG), pytest.raises(ProviderError) as caught:
        h.client.register(registration())
    token = h.fake.bodies()[0]["merchantToken"]
    error = caught.value
    for text in (str(error), repr(error), repr(error.__dict__), repr(error.args)):
        assert KEY_TEXT not in text
        assert token not in text
    assert KEY_TEXT not in caplog.text
    assert token not in caplog.text


def test_the_client_exposes_its_credentials_without_the_key() -> None:
    client = harness().client
    assert client.credentials is CREDENTIALS
    assert client.imid == IMID
    assert KEY_TEXT not in repr(client.credentials)


def test_the_key_never_appears_in_dumps_or_reprs() -> None:
    h = harness(registered(), ok(tXid=TXID, status="0"))
    dumps = [
        repr(h.client),
        repr(CREDENTIALS),
        str(CREDENTIALS),
        CREDENTIALS.model_dump_json(),
        repr(CREDENTIALS.model_dump()),
        registration().model_dump_json(),
        h.client.register(registration()).model_dump_json(),
        h.client.inquiry(TXID, "ORD-1", "12000").model_dump_json(),
        h.client.payment_step(TXID, "ORD-1", "12000", "https://m.example/cb").model_dump_json(),
    ]
    for text in dumps:
        assert KEY_TEXT not in text
