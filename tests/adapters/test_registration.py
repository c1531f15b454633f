"""register_with_recovery: pitfall 7's bounded recovery, and nothing more."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError

from adapters.errors import DuplicateReference, InvalidToken, MalformedResponse, ProviderTimeout
from adapters.wallets.registration import register_with_recovery
from tests.adapters.nicepay_fake import (
    IMID,
    KEY_TEXT,
    TXID,
    harness,
    refused,
    registered,
    registration,
    sha,
    timeout,
)


class Suffixes:
    """Hands out S1, S2, ... and counts the calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return f"S{self.calls}"


def references(h_bodies: list[dict[str, str]]) -> list[str]:
    return [body["referenceNo"] for body in h_bodies]


def test_a_first_success_is_returned_as_is() -> None:
    h, suffix = harness(registered()), Suffixes()
    response, reference = register_with_recovery(h.client, registration(), suffix=suffix)
    assert (response.tx_id, reference) == (TXID, "ORD-1")
    assert len(h.fake.requests) == 1
    assert suffix.calls == 0


@pytest.mark.parametrize(
    "lost", [timeout(), httpx.Response(503), httpx.Response(200, text="<html>")]
)
def test_a_lost_answer_is_resent_once_with_the_same_reference(
    lost: httpx.Response | Exception,
) -> None:
    h, suffix = harness(lost, registered()), Suffixes()
    response, reference = register_with_recovery(h.client, registration(), suffix=suffix)
    assert (response.tx_id, reference) == (TXID, "ORD-1")
    assert references(h.fake.bodies()) == ["ORD-1", "ORD-1"]
    assert suffix.calls == 0


def test_a_duplicate_after_a_lost_answer_registers_under_a_suffixed_reference() -> None:
    other_txid = "IONPAYTEST05202502010030009999"
    h, suffix = (
        harness(timeout(), refused("9009", "Duplicate"), registered("ORD-1-S1", other_txid)),
        Suffixes(),
    )
    response, reference = register_with_recovery(h.client, registration(), suffix=suffix)

    assert (response.tx_id, reference) == (other_txid, "ORD-1-S1")
    bodies = h.fake.bodies()
    assert references(bodies) == ["ORD-1", "ORD-1", "ORD-1-S1"]
    last = bodies[-1]
    assert last["merchantToken"] == sha(last["timeStamp"], IMID, "ORD-1-S1", "12000", KEY_TEXT)
    assert last["cartData"] == bodies[0]["cartData"]
    assert suffix.calls == 1


def test_a_duplicate_on_the_first_attempt_is_not_renamed_blindly() -> None:
    h, suffix = harness(refused("9009", "Duplicate"), registered()), Suffixes()
    with pytest.raises(DuplicateReference):
        register_with_recovery(h.client, registration(), suffix=suffix)
    assert len(h.fake.requests) == 1
    assert suffix.calls == 0


def test_a_business_refusal_is_raised_at_once() -> None:
    h, suffix = harness(refused("9010"), registered()), Suffixes()
    with pytest.raises(InvalidToken):
        register_with_recovery(h.client, registration(), suffix=suffix)
    assert len(h.fake.requests) == 1


def test_two_lost_answers_are_raised_without_a_third_send() -> None:
    h, suffix = harness(timeout(), timeout(), registered()), Suffixes()
    with pytest.raises(ProviderTimeout):
        register_with_recovery(h.client, registration(), suffix=suffix)
    assert len(h.fake.requests) == 2
    assert suffix.calls == 0


@pytest.mark.parametrize(
    ("third", "error"),
    [
        (refused("9009", "Duplicate"), DuplicateReference),
        (timeout(), ProviderTimeout),
        (httpx.Response(200, text="garbled"), MalformedResponse),
    ],
)
def test_the_renamed_attempt_is_the_last(
    third: httpx.Response | Exception, error: type[Exception]
) -> None:
    h, suffix = harness(timeout(), refused("9009"), third, registered()), Suffixes()
    with pytest.raises(error):
        register_with_recovery(h.client, registration(), suffix=suffix)
    assert len(h.fake.requests) == 3
    assert suffix.calls == 1


def test_a_suffixed_reference_over_40_characters_is_refused_before_sending() -> None:
    h = harness(httpx.Response(502), refused("9009"), registered())
    with pytest.raises(ValidationError, match="40"):
        register_with_recovery(h.client, registration("R" * 38), suffix=lambda: "XYZ")
    assert len(h.fake.requests) == 2
