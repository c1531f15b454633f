"""register_with_recovery: pitfall 7's bounded recovery, and nothing more.

NICEPAY is the simulator in-process: a first attempt whose answer was lost either reached it (a
resend then meets its own 9009) or did not (``process=False``: the resend registers).
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from adapters.errors import DuplicateReference, InvalidToken, MalformedResponse, ProviderTimeout
from adapters.nicepay.client import REGISTRATION_PATH
from adapters.nicepay.config import NicepayCredentials
from adapters.wallets.registration import register_with_recovery
from tests.adapters.mock_nicepay import Nicepay, harness
from tests.adapters.values import BASE, IMID, KEY_TEXT, refusal, registration, sha


class Suffixes:
    """Hands out S1, S2, ... and counts the calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return f"S{self.calls}"


def references(h_bodies: list[dict[str, str]]) -> list[str]:
    return [body["referenceNo"] for body in h_bodies]


def test_a_first_success_is_returned_as_is(nicepay: Nicepay) -> None:
    h, suffix = harness(nicepay), Suffixes()
    response, reference = register_with_recovery(h.client, registration(), suffix=suffix)
    assert (response.tx_id, reference) == (h.sim.transaction(reference_no="ORD-1").tx_id, "ORD-1")
    assert len(h.line.requests) == 1
    assert suffix.calls == 0


@pytest.mark.parametrize(
    "lost",
    [{"timeout": True}, {"status": 503}, {"body": b"<html>"}],
    ids=["timeout", "503", "garbled"],
)
def test_a_lost_answer_is_resent_once_with_the_same_reference(
    nicepay: Nicepay, lost: dict[str, Any]
) -> None:
    h, suffix = harness(nicepay), Suffixes()
    h.sim.faults.response(REGISTRATION_PATH, process=False, **lost)  # it never got through
    response, reference = register_with_recovery(h.client, registration(), suffix=suffix)
    assert (response.tx_id, reference) == (h.sim.transaction(reference_no="ORD-1").tx_id, "ORD-1")
    assert references(h.line.bodies()) == ["ORD-1", "ORD-1"]
    assert suffix.calls == 0


def test_a_duplicate_after_a_lost_answer_registers_under_a_suffixed_reference(
    nicepay: Nicepay,
) -> None:
    h, suffix = harness(nicepay), Suffixes()
    h.sim.faults.response(REGISTRATION_PATH, timeout=True)  # registered; the answer is lost
    response, reference = register_with_recovery(h.client, registration(), suffix=suffix)

    renamed = h.sim.transaction(reference_no="ORD-1-S1").tx_id
    assert renamed != h.sim.transaction(reference_no="ORD-1").tx_id
    assert (response.tx_id, reference) == (renamed, "ORD-1-S1")
    bodies = h.line.bodies()
    assert references(bodies) == ["ORD-1", "ORD-1", "ORD-1-S1"]
    last = bodies[-1]
    assert last["merchantToken"] == sha(last["timeStamp"], IMID, "ORD-1-S1", "12000", KEY_TEXT)
    assert last["cartData"] == bodies[0]["cartData"]
    assert suffix.calls == 1


def test_a_duplicate_on_the_first_attempt_is_not_renamed_blindly(nicepay: Nicepay) -> None:
    h, suffix = harness(nicepay), Suffixes()
    h.client.register(registration())  # another order already holds ORD-1 at NICEPAY
    with pytest.raises(DuplicateReference):
        register_with_recovery(h.client, registration(), suffix=suffix)
    assert len(h.line.requests) == 2
    assert suffix.calls == 0


def test_a_business_refusal_is_raised_at_once(nicepay: Nicepay) -> None:
    wrong_key = NicepayCredentials(imid=IMID, merchant_key="not-the-merchant-key", base_url=BASE)
    h, suffix = harness(nicepay, credentials=wrong_key), Suffixes()
    with pytest.raises(InvalidToken):  # NICEPAY's own 9010
        register_with_recovery(h.client, registration(), suffix=suffix)
    assert len(h.line.requests) == 1


def test_two_lost_answers_are_raised_without_a_third_send(nicepay: Nicepay) -> None:
    h, suffix = harness(nicepay), Suffixes()
    h.sim.faults.response(REGISTRATION_PATH, timeout=True, times=2)
    with pytest.raises(ProviderTimeout):
        register_with_recovery(h.client, registration(), suffix=suffix)
    assert len(h.line.requests) == 2
    assert suffix.calls == 0


@pytest.mark.parametrize(
    ("third", "error"),
    [
        ({"body": refusal("9009", "Duplicate")}, DuplicateReference),
        ({"timeout": True}, ProviderTimeout),
        ({"body": b"garbled"}, MalformedResponse),
    ],
    ids=["9009", "timeout", "garbled"],
)
def test_the_renamed_attempt_is_the_last(
    nicepay: Nicepay, third: dict[str, Any], error: type[Exception]
) -> None:
    h, suffix = harness(nicepay), Suffixes()
    h.sim.faults.response(REGISTRATION_PATH, timeout=True)  # registered; the answer is lost
    h.sim.faults.response(REGISTRATION_PATH, body=refusal("9009"))  # as NICEPAY would answer
    h.sim.faults.response(REGISTRATION_PATH, **third)
    with pytest.raises(error):
        register_with_recovery(h.client, registration(), suffix=suffix)
    assert len(h.line.requests) == 3
    assert suffix.calls == 1


def test_a_suffixed_reference_over_40_characters_is_refused_before_sending(
    nicepay: Nicepay,
) -> None:
    h = harness(nicepay)
    h.sim.faults.response(REGISTRATION_PATH, status=502, process=True)  # registered, then 502
    with pytest.raises(ValidationError, match="40"):
        register_with_recovery(h.client, registration("R" * 38), suffix=lambda: "XYZ")
    assert len(h.line.requests) == 2
