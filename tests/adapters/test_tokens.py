"""The merchantToken formulas T1-T5 and the WIB timeStamp, checked against hashlib directly."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import SecretStr

from adapters.nicepay.tokens import (
    cancel_token,
    link_enable_token,
    link_initiate_token,
    merchant_token,
    nicepay_timestamp,
    notification_token,
    registration_token,
    token_matches,
)

KEY_TEXT = "test-merchant-key"
KEY = SecretStr(KEY_TEXT)
IMID = "IONPAYTEST"
TS = "20250201003000"
TXID = "IONPAYTEST05202502010030001234"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_t1_matches_a_value_pinned_with_sha256sum() -> None:
    # Computed outside Python: printf '%s' "20250201003000IONPAYTESTORD-112000test-merchant-key"
    pinned = "c24ca0feec79044422e8069620e5ae660722a9d1d9619f82beba8e1cfbc772b4"
    assert registration_token(TS, IMID, "ORD-1", "12000", KEY) == pinned


def test_t1_is_timestamp_imid_reference_amount_key() -> None:
    expected = sha(TS + IMID + "ORD-1" + "12000" + KEY_TEXT)
    assert registration_token(TS, IMID, "ORD-1", "12000", KEY) == expected


def test_t2_is_timestamp_imid_txid_amount_key() -> None:
    expected = sha(TS + IMID + TXID + "5000" + KEY_TEXT)
    assert cancel_token(TS, IMID, TXID, "5000", KEY) == expected


def test_t3_is_imid_txid_amount_key_without_timestamp() -> None:
    expected = sha(IMID + TXID + "12000" + KEY_TEXT)
    assert notification_token(IMID, TXID, "12000", KEY) == expected


def test_t4_is_imid_reference_phone_key() -> None:
    expected = sha(IMID + "LINK-1" + "08123456789" + KEY_TEXT)
    assert link_enable_token(IMID, "LINK-1", "08123456789", KEY) == expected


def test_t5_is_imid_reference_amount_key() -> None:
    expected = sha(IMID + "ORD-9" + "25000" + KEY_TEXT)
    assert link_initiate_token(IMID, "ORD-9", "25000", KEY) == expected


def test_tokens_are_lowercase_hex_sha256() -> None:
    token = merchant_token("a", "b")
    assert token == sha("ab")
    assert len(token) == 64
    assert token == token.lower()


def test_utf8_is_hashed() -> None:
    assert merchant_token("Rp", "é") == hashlib.sha256("Rpé".encode()).hexdigest()


def test_amount_text_changes_the_token() -> None:
    plain = registration_token(TS, IMID, "ORD-1", "10000", KEY)
    decimals = registration_token(TS, IMID, "ORD-1", "10000.00", KEY)
    assert plain != decimals
    assert decimals == sha(TS + IMID + "ORD-1" + "10000.00" + KEY_TEXT)


def test_the_key_changes_the_token() -> None:
    other = SecretStr("another-key")
    assert registration_token(TS, IMID, "R", "1", KEY) != registration_token(
        TS, IMID, "R", "1", other
    )


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2025, 1, 31, 17, 30, tzinfo=UTC), "20250201003000"),  # WIB is the next day
        (datetime(2024, 12, 31, 17, 0, 0, tzinfo=UTC), "20250101000000"),  # and the next year
        (datetime(2025, 6, 1, 9, 15, 7, tzinfo=UTC), "20250601161507"),
        (datetime(2025, 6, 1, 4, 0, tzinfo=timezone(timedelta(hours=-5))), "20250601160000"),
        (datetime(2025, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=7))), "20250601120000"),
    ],
)
def test_timestamp_is_wib_whatever_the_input_zone(moment: datetime, expected: str) -> None:
    assert nicepay_timestamp(moment) == expected


def test_timestamp_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="aware"):
        nicepay_timestamp(datetime(2025, 1, 1, 12, 0))  # naive on purpose


def test_token_matches_ignores_the_case_of_the_received_token() -> None:
    expected = notification_token(IMID, TXID, "12000", KEY)
    assert token_matches(expected, expected)
    assert token_matches(expected, expected.upper())


@pytest.mark.parametrize("received", [None, "", "0" * 64, "abc"])
def test_token_matches_refuses_anything_else(received: str | None) -> None:
    expected = notification_token(IMID, TXID, "12000", KEY)
    assert not token_matches(expected, received)


def test_token_matches_refuses_a_token_for_another_amount() -> None:
    expected = notification_token(IMID, TXID, "12000", KEY)
    assert not token_matches(expected, notification_token(IMID, TXID, "12001", KEY))
