"""The documented per-wallet cancel rules (reference §12, pitfall 8), checked before a cancel.

The merchant's table refuses, with the rule's name and before anything is stored or sent, what
NICEPAY would refuse or what is a manual refund; what it lets through reaches the simulator and
succeeds. The simulator's own rules (``adapters/simulator/_cancel.py``) agree with the
merchant's over a grid of wallets, ages, WIB hours and amounts.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from adapters.errors import CancelNotAllowed
from adapters.nicepay.tokens import WIB
from adapters.refunds import RefundStatus
from adapters.simulator import DEFAULT_CANCEL_RULES
from adapters.simulator._cancel import decide_cancel
from adapters.simulator._validation import Refused
from adapters.wallets.cancel_rules import MAX_CANCEL_AGE, cancel_refusal
from fsm.flows import Wallet
from tests.adapters.refund_rig import refund_rig

DAY = timedelta(days=1)


def wib(day: int, hour: int, minute: int = 0) -> datetime:
    """A time in Jakarta in November 2026, as UTC."""
    return datetime(2026, 11, day, hour, minute, tzinfo=WIB).astimezone(UTC)


# wallet, paid at, asked at, partial, the rule that refuses (None: it is sent)
CASES = [
    (Wallet.OVO, wib(10, 9), wib(10, 23, 59), False, None),
    (Wallet.OVO, wib(10, 9), wib(10, 10), True, "full_only"),
    (Wallet.OVO, wib(10, 23, 50), wib(11, 0, 10), False, "same_day"),
    (Wallet.DANA, wib(10, 9), wib(11, 0, 30), True, "blackout"),
    (Wallet.DANA, wib(10, 9), wib(11, 1), True, None),
    (Wallet.DANA, wib(10, 9), wib(10, 9) + 29 * DAY, False, None),
    (Wallet.DANA, wib(1, 9), wib(1, 9) + 30 * DAY, False, "window"),
    (Wallet.LINKAJA, wib(10, 9), wib(10, 9) + 29 * DAY, False, None),
    (Wallet.LINKAJA, wib(10, 9), wib(10, 10), True, "full_only"),
    (Wallet.LINKAJA, wib(1, 9), wib(1, 9) + 31 * DAY, False, "window"),
    (Wallet.SHOPEEPAY, wib(1, 9), wib(1, 9) + 89 * DAY, True, None),
    (Wallet.SHOPEEPAY, wib(1, 9), wib(1, 9) + 91 * DAY, False, "max_age"),
]


@pytest.mark.parametrize(("wallet", "paid_at", "asked_at", "partial", "rule"), CASES)
def test_each_rule_refuses_before_sending_and_what_passes_succeeds(
    db_url: str,
    wallet: Wallet,
    paid_at: datetime,
    asked_at: datetime,
    partial: bool,
    rule: str | None,
) -> None:
    with refund_rig(db_url, start=paid_at) as rig:
        payment = rig.paid("rule", wallet)
        rig.clock.advance(asked_at - paid_at)
        amount = "50000" if partial else None
        if rule is None:
            refund = rig.service.cancel(payment.id, request_id="rf-1", amount=amount)
            assert refund.status is RefundStatus.SUCCEEDED, refund
            assert rig.cancels_sent(payment) == 1
            return
        before = rig.engine.get(payment.id)
        with pytest.raises(CancelNotAllowed) as refused:
            rig.service.cancel(payment.id, request_id="rf-1", amount=amount)
        assert refused.value.rule == rule
        assert (refused.value.payment_id, refused.value.request_id) == (payment.id, "rf-1")
        assert rig.engine.get(payment.id) == before
        assert rig.service.calls.by_key(payment.id, "refund:rf-1") is None
        assert rig.cancels_sent(payment) == 0


def test_astrapay_has_no_documented_rule_but_the_90_days() -> None:
    paid = wib(10, 0, 30)  # DANA's blackout hour means nothing to AstraPay
    for partial in (False, True):
        assert cancel_refusal("astrapay", now=paid, paid_at=paid, partial=partial) is None
    late = cancel_refusal("astrapay", now=paid + 91 * DAY, paid_at=paid, partial=False)
    assert late is not None
    assert late.rule == "max_age"


def _simulator_refuses(wallet: Wallet, now: datetime, paid_at: datetime, partial: bool) -> bool:
    try:
        decide_cancel(
            DEFAULT_CANCEL_RULES[wallet],
            now=now,
            paid_at=paid_at,
            max_age=MAX_CANCEL_AGE,
            partial=partial,
        )
    except Refused:
        return True
    return False


AGES = [timedelta(0), timedelta(hours=23), DAY, 29 * DAY, 30 * DAY, 31 * DAY, 89 * DAY, 91 * DAY]
HOURS = [0, 1, 9, 23]


@pytest.mark.parametrize("wallet", list(Wallet))
def test_the_simulator_applies_the_same_documented_rules(wallet: Wallet) -> None:
    for hour, age, partial in itertools.product(HOURS, AGES, (False, True)):
        now = wib(20, hour, 30)
        paid_at = now - age
        merchant = cancel_refusal(wallet, now=now, paid_at=paid_at, partial=partial)
        assert (merchant is not None) == _simulator_refuses(wallet, now, paid_at, partial), (
            wallet,
            hour,
            age,
            partial,
            merchant,
        )
