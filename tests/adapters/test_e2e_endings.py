"""End to end against the loopback simulator: the endings the old per-wallet code lists dropped.

NICEPAY reports one status table for every wallet. Here AstraPay's expiry (5) ends the payment
``expired``, and after a cancel its void (1) and refund (2, or AstraPay's own 8) end it ``voided``
or ``refunded``; the customer is never told afterwards that the cancelled payment went through.
LinkAja's expiry is played in ``test_e2e``. Nothing is mocked (see ``e2e_rig``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adapters.reconcile.deadlines import run_due
from adapters.simulator import BrowserOutcome, CustomerAction, ScriptedBrowser
from fsm.definition import Actor
from fsm.flows import Wallet
from fsm.model import Instance
from tests.adapters.e2e_rig import Rig, open_rig, sim_config

SI = Actor.STATUS_INQUIRY


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    with open_rig(f"sqlite:///{tmp_path / 'merchant.sqlite3'}") as opened:
        yield opened


def paid_astrapay(rig: Rig, name: str) -> Instance:
    """An AstraPay payment the customer paid, settled by the merchant's inquiry."""
    link = rig.link(f"acct-{name}")
    started = rig.start(name, Wallet.ASTRAPAY, link_id=link.id)
    assert rig.browse(started).outcome is BrowserOutcome.RETURNED
    rig.deliveries(rig.ref(name), 1)
    payment = rig.engine.get(started.instance.id)
    assert payment.state == "paid"
    return payment


def assert_never_told_it_was_paid(rig: Rig, payment: Instance) -> None:
    """Nothing is due for the payment, even past the 10 minutes ``paid`` would have waited."""
    assert payment.deadline_at is None
    runs = run_due(rig.service, now=datetime.now(UTC) + timedelta(minutes=11))
    assert payment.id not in [run.instance_id for run in runs]
    assert "update_customer" not in [record.event for record in rig.history(payment.id)]
    assert rig.engine.get(payment.id) == payment


def test_an_astrapay_cancel_voids_it_on_each_database(db_url: str) -> None:
    with open_rig(db_url) as rig:
        payment = paid_astrapay(rig, "astra-void")
        voided = rig.service.cancel(payment.id, request_id="void-1", reason="out of stock")
        assert voided.state == "voided"
        ref = rig.ref("astra-void")
        assert rig.sim.transaction(reference_no=ref).status == "1"
        last = rig.history(payment.id)[-1]
        assert (last.event, last.source, last.actor) == ("void_payment", "paid", SI)
        assert last.payload["status"] == "1"
        rig.deliveries(ref, 2)  # NICEPAY's reversal notification: recorded, changes nothing
        assert_never_told_it_was_paid(rig, rig.engine.get(payment.id))


@pytest.mark.parametrize("code", ["2", "8"])
def test_an_astrapay_partial_cancel_is_refunded_whichever_code_it_reports(
    tmp_path: Path, code: str
) -> None:
    config = sim_config(astrapay_refund_status=code)
    with open_rig(f"sqlite:///{tmp_path / 'merchant.sqlite3'}", config) as rig:
        payment = paid_astrapay(rig, "astra-refund")
        refunded = rig.service.cancel(payment.id, request_id="refund-1", amount="50000")
        assert refunded.state == "refunded"
        last = rig.history(payment.id)[-1]
        assert (last.event, last.source, last.actor) == ("refund_payment", "paid", SI)
        assert (last.payload["status"], last.payload["cancelAmt"]) == (code, "50000")
        rig.deliveries(rig.ref("astra-refund"), 2)
        assert_never_told_it_was_paid(rig, rig.engine.get(payment.id))


def test_an_abandoned_astrapay_payment_expires_with_status_5(rig: Rig) -> None:
    link = rig.link("acct")
    name = "astra-gone"
    started = rig.start(name, Wallet.ASTRAPAY, CustomerAction.ABANDON, link_id=link.id)
    assert rig.browse(started).outcome is BrowserOutcome.ABANDONED
    ref = rig.ref(name)
    assert rig.wait_sim(ref, "expired") == "expired"
    tx_id = rig.sim.transaction(reference_no=ref).tx_id
    assert rig.sim.transaction(reference_no=ref).status == "5"

    # linkInitiate is a browser step: the merchant learns the tXid when the customer comes back.
    url = f"{rig.sim.base_url}/nicepay/direct/v2/payment/result?tXid={tx_id}"
    assert ScriptedBrowser(rig.http, max_wait=10.0).open(url).outcome is BrowserOutcome.RETURNED

    payment = rig.engine.get(started.instance.id)
    assert (payment.state, payment.tx_id) == ("expired", tx_id)
    assert rig.events(payment.id)[-2:] == [
        ("check_status", "status_check_requested", "merchant"),
        ("expire_payment", "expired", "status_inquiry"),
    ]
    assert rig.history(payment.id)[-1].payload["status"] == "5"
