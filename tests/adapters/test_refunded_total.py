"""The refunded total an inquiry's void or refund binds, with and without NICEPAY's cancelAmt."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from adapters.reconcile.status import refunded_total
from fsm.flows import PaymentEvent
from fsm.model import Instance

T0 = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)
PAID = Instance(
    id="pay-1",
    flow="ewallet_payment",
    state="paid",
    version=9,
    wallet="dana",
    amount="12000",
    currency="IDR",
    reference_no="ORD-1",
    tx_id="IONPAYTEST05202611231200000001",
    mandate=None,
    deadline_at=None,
    created_at=T0,
    updated_at=T0,
)


@pytest.mark.parametrize(
    ("stored", "cancel_amount", "expected"),
    [
        (None, "5000", "5000"),  # NICEPAY's cumulative total
        ("7000", "5000", "7000"),  # a late answer never lowers it
        (None, None, "12000"),  # no total told: the whole amount counts as taken
        ("5000", "5000.00", "5000"),  # not exact: the stored total stays
    ],
)
def test_a_refund_binds_the_largest_total_it_can_be_sure_of(
    stored: str | None, cancel_amount: str | None, expected: str
) -> None:
    payment = replace(PAID, refunded_amount=stored)
    assert refunded_total(payment, PaymentEvent.REFUND_PAYMENT, cancel_amount) == expected


def test_a_void_takes_the_whole_amount_and_other_events_bind_nothing() -> None:
    assert refunded_total(PAID, PaymentEvent.VOID_PAYMENT, None) == "12000"
    assert refunded_total(PAID, PaymentEvent.CONFIRM_PAYMENT, "12000") is None
