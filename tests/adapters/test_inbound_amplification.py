"""Cheap amplification, over real HTTP: what forged and replayed requests can make us do.

Two replicas of the endpoints share one database (SQLite, PostgreSQL) and one clock, in front of
the loopback simulator, which counts the inquiries it answers per tXid. The requests only ask for
status checks; each replica's status worker runs them afterwards. A browser return carries
nothing verified, so its key is the throttle slot it arrived in: any number of forged returns, to
either replica, cost one inquiry per payment per slot and a bounded number of rows. A captured
genuine notification replayed with junk parameters is the same event (its key is what its token
signed and its status, reduced to deposit or reversal), so it applies nothing new and asks
nothing; replayed to a settled payment it asks nothing, and a reversal claim asks once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest

from adapters.inbound.asgi import CALLBACK_PATH, NOTIFICATION_PATH
from adapters.reconcile.intents import Call
from fsm.model import Instance
from tests.adapters.counted_nicepay import counted_inquiries
from tests.adapters.inbound_rig import Replicas, open_replicas

BURST = 50
CLIENTS = 8


@pytest.fixture
def shop(db_url: str) -> Iterator[Replicas]:
    with counted_inquiries() as nicepay, open_replicas(db_url, nicepay) as shop:
        yield shop


def burst(count: int, send: Callable[[int], httpx.Response]) -> list[int]:
    """``count`` requests from :data:`CLIENTS` clients at once; their statuses."""
    with ThreadPoolExecutor(CLIENTS) as pool:
        return [response.status_code for response in pool.map(send, range(count))]


def rows(shop: Replicas, payment: Instance) -> tuple[int, int, int]:
    """The payment's applied steps, refused events and recorded inquiries."""
    engine = shop.engine
    inquiries = [i for i in shop.service.calls.of_instance(payment.id) if i.call == Call.INQUIRY]
    return len(engine.history(payment.id)), len(engine.rejections(payment.id)), len(inquiries)


def forged_return(payment: Instance, n: int) -> dict[str, str]:
    """A browser return anyone could send: the payment's tXid, any resultCd, any junk."""
    return {
        "tXid": payment.tx_id or "",
        "referenceNo": payment.reference_no or "",
        "resultCd": f"{n:04d}",
        "resultMsg": "SUCCESS" if n % 2 else "paid",
        f"junk{n}": "x" * n,
    }


def test_forged_returns_to_both_replicas_cost_one_inquiry_per_slot(shop: Replicas) -> None:
    payment = shop.start("AMP-RETURNS")

    def forge(n: int) -> httpx.Response:
        return shop.get(CALLBACK_PATH, replica=n, params=forged_return(payment, n))

    assert burst(BURST, forge) == [200] * BURST
    assert shop.inquiries(payment) == 0  # asked for, not asked yet
    assert shop.work().done == 1
    assert shop.inquiries(payment) == 1
    steps, refused, asked = rows(shop, payment)
    assert asked == 1
    assert steps == payment.version + 2  # the return, then the inquiry's answer (pending)
    assert shop.engine.get(payment.id).state == "payment_pending"

    # As many again in the same slot add nothing: no step, no refusal, no inquiry.
    assert burst(BURST, forge) == [200] * BURST
    assert shop.work().claimed == 0
    assert (shop.inquiries(payment), rows(shop, payment)) == (1, (steps, refused, asked))
    attempts = shop.service.inbound.latest(limit=1000, instance_id=payment.id)
    assert len(attempts) == 2 * BURST
    assert {a.outcome for a in attempts} <= {"accepted", "duplicate", "not_applied"}
    assert max(len(json.dumps(a.parameters)) for a in attempts) <= 4096

    # The next slot buys one more inquiry, however many returns arrive in it.
    shop.clock.advance(timedelta(seconds=30))
    assert burst(BURST // 2, forge) == [200] * (BURST // 2)
    assert shop.work().done == 1
    assert shop.inquiries(payment) == 2
    assert rows(shop, payment)[2] == 2


def test_a_genuine_notification_replayed_with_junk_applies_and_asks_nothing(
    shop: Replicas,
) -> None:
    payment = shop.start("AMP-REPLAY")
    assert shop.nicepay.sim.approve(payment.tx_id or "")  # NICEPAY's notification is dropped
    genuine = shop.captured(payment)
    assert shop.post(NOTIFICATION_PATH, data=genuine).status_code == 200
    shop.work()
    paid = shop.engine.get(payment.id)
    assert (paid.state, shop.inquiries(payment)) == ("paid", 1)
    before = rows(shop, payment)[::2]  # steps and inquiries

    def replay(n: int) -> httpx.Response:
        junk = {**genuine, f"junk{n}": str(n), "transTm": f"{n:06d}", "goodsNm": f"g{n}"}
        return shop.post(NOTIFICATION_PATH, replica=n, data=junk)

    assert burst(BURST, replay) == [200] * BURST
    assert shop.work().claimed == 0
    assert shop.inquiries(payment) == 1
    assert rows(shop, payment)[::2] == before
    current = shop.engine.get(payment.id)
    assert (current.state, current.version) == ("paid", paid.version)
    outcomes = {a.outcome for a in shop.service.inbound.latest(instance_id=payment.id)}
    assert outcomes == {"accepted", "duplicate"}


def test_a_settled_payment_asks_nothing_for_a_replay_and_once_for_a_reversal_claim(
    shop: Replicas,
) -> None:
    payment = shop.start("AMP-SETTLED")
    assert shop.nicepay.sim.approve(payment.tx_id or "")
    genuine = shop.captured(payment)
    shop.services[0].check_status(payment.id)  # settled by the merchant's own check first
    assert shop.engine.get(payment.id).state == "paid"
    assert shop.inquiries(payment) == 1

    # The genuine notification arrives after settlement, then is replayed with junk: no
    # inquiry, since a deposit claimed again can reveal nothing about a settled payment.
    statuses = burst(BURST, lambda n: shop.post(NOTIFICATION_PATH, n, data={**genuine, "n": n}))
    assert statuses == [200] * BURST
    assert shop.work().claimed == 0
    assert shop.inquiries(payment) == 1

    # A reversal claim (status 1: the token does not cover it) may reveal a void: one inquiry,
    # from whichever replica gets there first, however often it is replayed.
    reversal = {**genuine, "status": "1"}
    statuses = burst(BURST, lambda n: shop.post(NOTIFICATION_PATH, n, data={**reversal, "n": n}))
    assert statuses == [200] * BURST
    assert shop.work().done == 1
    assert shop.inquiries(payment) == 2
    assert shop.engine.get(payment.id).state == "paid"  # NICEPAY still says paid
