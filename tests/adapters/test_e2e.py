"""End to end against the loopback NICEPAY simulator: every wallet, every injected fault.

Nothing is mocked. The simulator plays NICEPAY and the wallets over HTTP, a scripted browser plays
the customer, and the merchant side is the library as the demo assembles it (see
``adapters.simulator.rig.merchant_rig``): the service registers and redirects, the notification app
receives notifications and browser returns, and only status inquiries settle. Each test gets its
own simulator, merchant server and database; on the way out every stored payment and link must
replay consistently, and every settlement must be an inquiry's answer straight after a check
(``e2e_rig.audit_store``).

Waiting is by polling with a deadline, never by a fixed sleep: a notification delivery is
recorded by the simulator only once the merchant has answered it, and the browser returns only
once the merchant has handled its callback, so after both the payment's state is final.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from adapters.errors import ProviderTimeout
from adapters.nicepay.config import InquiryRetry
from adapters.simulator import BrowserOutcome, BrowserResult, CustomerAction, ScriptedBrowser
from fsm.definition import Actor
from fsm.engine import Engine
from fsm.errors import GuardRefused, RejectReason
from fsm.flows import FLOWS, AstrapayPaymentEvent, PaymentEvent, Wallet
from fsm.model import Instance
from fsm.store.sql import SqlStore
from tests.adapters.e2e_rig import (
    AMOUNT,
    Rig,
    assert_replays,
    assert_settled_by_inquiry,
    open_rig,
    sim_config,
)
from tests.adapters.pages import shown_outcome
from tests.conftest import database

INQUIRY = "/direct/v2/inquiry"
REGISTRATION = "/direct/v2/registration"
PAYMENT = "/direct/v2/payment"
REGISTERED_WALLETS = (Wallet.OVO, Wallet.DANA, Wallet.LINKAJA, Wallet.SHOPEEPAY)
CUSTOMER_STEP = {
    Wallet.OVO: PaymentEvent.PUSH_TO_APP,
    Wallet.DANA: PaymentEvent.REDIRECT_CUSTOMER,
    Wallet.LINKAJA: PaymentEvent.REDIRECT_CUSTOMER,
    Wallet.SHOPEEPAY: PaymentEvent.REDIRECT_CUSTOMER,
}
START = [
    ("send_registration", "registration_sent", "merchant"),
    ("accept_registration", "registered", "provider_response"),
    ("request_payment", "payment_requested", "merchant"),
]
BY_NOTIFICATION = [
    ("receive_notification", "notification_received", "provider_notification"),
    ("check_status", "status_check_requested", "merchant"),
]
BY_CALLBACK = [("return_from_partner", "status_check_requested", "browser_callback")]
PAID = [("confirm_payment", "paid", "status_inquiry")]
TIMER_CHECK = ("check_status", "status_check_requested", "timer")
TRIGGERS = frozenset({*BY_NOTIFICATION, *BY_CALLBACK})
"""What may lead to the status check when the notification and the callback race."""
LONG_EXPIRY = dict.fromkeys(
    ("ovo", "dana", "linkaja", "shopeepay", "astrapay"), timedelta(minutes=5)
)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file for the merchant's payments."""
    return f"sqlite:///{tmp_path / 'merchant.sqlite3'}"


@pytest.fixture
def rig(sqlite_url: str) -> Iterator[Rig]:
    """The demo's rig with compressed expiries, audited on the way out."""
    with open_rig(sqlite_url) as opened:
        yield opened


# --- helpers -----------------------------------------------------------------------------------


def redirect_steps(wallet: Wallet) -> list[tuple[str, str, str]]:
    """The start of a payment up to the customer's step, as ``Rig.events`` lists it."""
    event = CUSTOMER_STEP[wallet]
    dest = "awaiting_approval" if wallet is Wallet.OVO else "redirected_to_partner"
    return [*START, (event, dest, "merchant")]


def assert_triggered_then_paid(events: list[tuple[str, str, str]]) -> None:
    """The notification and the callback raced: each step at most once, then one settlement.

    Which one wins varies from run to run: the notification, the callback, or both, where the
    callback moved a received notification on to the check, sometimes just before the
    notification's own check (a self-loop on ``status_check_requested``) was applied.
    """
    *triggers, settled = events
    assert [settled] == PAID
    assert triggers
    assert triggers[-1][1] == "status_check_requested"
    assert set(triggers) <= TRIGGERS
    assert len(set(triggers)) == len(triggers)


def settled_once(rig: Rig, payment: Instance, state: str, status: str) -> None:
    """One settlement, into ``state``, by an inquiry that answered ``status``; log replays."""
    settlements = rig.settlements(payment.id)
    assert [(r.dest, str(r.actor), r.payload["status"]) for r in settlements] == [
        (state, "status_inquiry", status)
    ]
    assert settlements[0].payload["tXid"] == payment.tx_id
    assert_settled_by_inquiry(rig.engine, payment.id)
    assert_replays(rig.engine, rig.engine.get(payment.id))


def refused(rig: Rig, payment_id: str, event: str) -> list[RejectReason]:
    """The reasons ``event`` was refused for the payment, in arrival order."""
    return [r.reason for r in rig.rejections(payment_id) if r.event == event]


def journalled(rig: Rig, payment_id: str, endpoint: str = "callback") -> str:
    """How the payment's latest request to ``endpoint`` ended, as the inbound journal has it."""
    attempts = rig.service.inbound.latest(instance_id=payment_id)
    return next(attempt.outcome for attempt in attempts if attempt.endpoint == endpoint)


def sim_paid(rig: Rig, order_ref: str) -> list[str]:
    """The simulator's paid transactions for an order (its referenceNo, suffixed or not)."""
    transactions = (rig.sim.transaction(tx.id) for tx in database(rig.sim.engine).list_instances())
    return [
        tx.reference_no
        for tx in transactions
        if tx.reference_no.startswith(order_ref) and tx.state == "paid"
    ]


def confirm_order(rig: Rig, payment_id: str) -> Instance:
    """Tell the customer: the merchant's own last step after ``paid``."""
    result = rig.service.fire(payment_id, PaymentEvent.CONFIRM_ORDER, Actor.MERCHANT, "confirm")
    assert result is not None
    return rig.engine.get(payment_id)


def reload_callback(rig: Rig, browsed: BrowserResult) -> httpx.Response:
    """The customer reloads the merchant's return page (the same query string again)."""
    return rig.http.get(browsed.final_url)


def return_later(rig: Rig, tx_id: str) -> BrowserResult:
    """The customer reopens NICEPAY's result page, which sends the browser back to the merchant."""
    url = f"{rig.sim.base_url}/nicepay/direct/v2/payment/result?tXid={tx_id}"
    return ScriptedBrowser(rig.http, max_wait=10.0).open(url)


# --- every wallet pays -----------------------------------------------------------------------


@pytest.mark.parametrize("wallet", REGISTERED_WALLETS)
def test_every_registered_wallet_pays(rig: Rig, wallet: Wallet) -> None:
    started = rig.start(f"paid-{wallet}", wallet)
    ref = rig.ref(f"paid-{wallet}")
    if wallet is Wallet.SHOPEEPAY:  # returnJsonFormat=1: NICEPAY answered app and web links
        assert started.step.kind == "app_link"
        assert started.step.app_url is not None
        assert "via=app" in started.step.app_url
    else:
        assert started.step.kind == "redirect"
    assert started.instance.state == (
        "awaiting_approval" if wallet is Wallet.OVO else "redirected_to_partner"
    )

    browsed = rig.browse(started)
    assert browsed.outcome is BrowserOutcome.RETURNED
    assert browsed.params["resultCd"] == "0000"
    assert browsed.params["tXid"] == started.instance.tx_id
    if wallet is Wallet.SHOPEEPAY:
        assert any("via=app" in url for url in browsed.visited)
    [delivery] = rig.deliveries(ref, 1)
    assert (delivery.status_code, delivery.fields["status"]) == (200, "0")

    payment = rig.engine.get(started.instance.id)
    assert payment.state == "paid"
    assert rig.sim.transaction(reference_no=ref).status == "0"
    events = rig.events(payment.id)
    assert events[:4] == redirect_steps(wallet)
    assert_triggered_then_paid(events[4:])
    settled_once(rig, payment, "paid", "0")
    assert confirm_order(rig, payment.id).state == "order_confirmed"


@pytest.mark.parametrize("mandate_in", ["notification", "callback", "both"])
def test_astrapay_links_then_pays(sqlite_url: str, mandate_in: str) -> None:
    with open_rig(sqlite_url, sim_config(mandate_in=mandate_in)) as rig:
        link = rig.link("acct")
        granted = rig.sim.mandate_of(rig.ref("lnk-acct"))
        assert granted is not None
        if mandate_in == "callback":  # only the unauthenticated return has it: an operator's call
            assert (link.state, link.mandate) == ("mandate_missing", None)
            hints = [r.payload.get("mandateID") for r in rig.rejections(link.id)]
            assert hints == [granted]
            rig.service.attach_mandate(link.id, granted, by="ops", reason="checked with AstraPay")
            link = rig.engine.get(link.id)
        assert (link.state, link.mandate) == ("linked", granted)
        link_events = rig.events(link.id)
        if mandate_in == "callback":
            assert link_events == [
                ("confirm_link_without_mandate", "mandate_missing", "provider_notification"),
                ("attach_mandate", "linked", "operator"),
            ]
        else:
            assert link_events == [("confirm_link", "linked", "provider_notification")]

        started = rig.start("astra", Wallet.ASTRAPAY, link_id=link.id)
        assert started.step.kind == "form"
        assert started.step.fields["mandateID"] == granted
        browsed = rig.browse(started)
        assert browsed.outcome is BrowserOutcome.RETURNED
        rig.deliveries(rig.ref("astra"), 1)

        payment = rig.engine.get(started.instance.id)
        assert payment.state == "paid"
        assert payment.tx_id == browsed.params["tXid"]
        settled_once(rig, payment, "paid", "0")
        done = rig.service.fire(
            payment.id, AstrapayPaymentEvent.UPDATE_CUSTOMER, Actor.MERCHANT, "tell-customer"
        )
        assert done is not None
        assert done.state == "customer_updated"


def test_astrapay_callback_first_settles_by_the_inquiry_its_txid_allows(rig: Rig) -> None:
    link = rig.link("acct")
    ref = rig.ref("astra-late")
    rig.sim.faults.notification(ref, delay=0.5)
    started = rig.start("astra-late", Wallet.ASTRAPAY, link_id=link.id)
    assert rig.browse(started).outcome is BrowserOutcome.RETURNED
    # linkInitiate is a browser submit: the callback's tXid is the first the merchant hears of,
    # unauthenticated; the inquiry made with it confirms it against referenceNo and amount.
    payment = rig.engine.get(started.instance.id)
    assert payment.state == "paid"
    assert payment.tx_id == rig.sim.transaction(reference_no=ref).tx_id
    assert rig.events(payment.id) == [
        ("submit_link_initiate", "link_initiate_submitted", "merchant"),
        ("receive_callback", "callback_received", "browser_callback"),
        ("check_status", "status_check_requested", "merchant"),
        ("confirm_payment", "paid", "status_inquiry"),
    ]
    rig.deliveries(ref, 1)  # the late notification changes nothing
    late = [r for r in rig.rejections(payment.id) if r.event == "receive_notification"]
    assert [r.reason.value for r in late] == ["stale"]
    settled_once(rig, payment, "paid", "0")


def test_astrapay_dropped_notification_settles_through_the_callback(rig: Rig) -> None:
    """The callback's tXid is only a hint: NICEPAY's answer confirms it, and then it is bound."""
    link = rig.link("acct")
    ref = rig.ref("astra-nonote")
    rig.sim.faults.notification(ref, drop=True)
    started = rig.start("astra-nonote", Wallet.ASTRAPAY, link_id=link.id)
    assert rig.browse(started).outcome is BrowserOutcome.RETURNED
    rig.deliveries(ref, 1)
    assert rig.sim.transaction(reference_no=ref).state == "paid"  # NICEPAY has the money
    payment = rig.service.engine.get(started.instance.id)  # the callback ran its check
    assert payment.state == "paid"
    assert payment.tx_id == rig.sim.transaction(reference_no=ref).tx_id
    bound_by = [r for r in rig.history(payment.id) if r.event == "confirm_payment"]
    assert [r.actor for r in bound_by] == ["status_inquiry"]


def test_astrapay_mandate_lost_with_its_callback_waits_and_cannot_pay(sqlite_url: str) -> None:
    with open_rig(sqlite_url, sim_config(mandate_in="callback")) as rig:
        rig.sim.faults.callback(rig.ref("lnk-gone"))
        link = rig.link("gone")
        assert link.state == "mandate_missing"
        assert link.mandate is None
        assert rig.events(link.id) == [
            ("confirm_link_without_mandate", "mandate_missing", "provider_notification")
        ]
        with pytest.raises(GuardRefused):
            rig.start("nomandate", Wallet.ASTRAPAY, link_id=link.id)
        payment = rig.engine.get(f"pay-{rig.merchant.run}-nomandate")
        assert payment.state == "checkout_requested"
        assert refused(rig, payment.id, "submit_link_initiate") == [RejectReason.GUARD_REFUSED]


def test_dana_pays_on_each_database(db_url: str) -> None:
    with open_rig(db_url) as rig:
        started = rig.start("dana-db", Wallet.DANA)
        assert rig.browse(started).outcome is BrowserOutcome.RETURNED
        rig.deliveries(rig.ref("dana-db"), 1)
        payment = rig.engine.get(started.instance.id)
        assert payment.state == "paid"
        settled_once(rig, payment, "paid", "0")


# --- failures ------------------------------------------------------------------------------


def test_ovo_declined_fails(rig: Rig) -> None:
    started = rig.start("ovo-no", Wallet.OVO, CustomerAction.DECLINE)
    browsed = rig.browse(started)
    assert browsed.outcome is BrowserOutcome.RETURNED
    assert browsed.params["resultCd"] != "0000"  # a UI hint only
    payment = rig.engine.get(started.instance.id)
    assert payment.state == "failed"
    assert rig.sim.deliveries == ()  # NICEPAY notifies nothing for a decline
    assert rig.events(payment.id) == [
        *redirect_steps(Wallet.OVO),
        *BY_CALLBACK,
        ("fail_payment", "failed", "status_inquiry"),
    ]
    settled_once(rig, payment, "failed", "8")


def test_ovo_push_ignored_expires_with_status_5(rig: Rig) -> None:
    started = rig.start("ovo-ignored", Wallet.OVO, CustomerAction.ABANDON)
    browsed = rig.browse(started)  # NICEPAY's page waits for the push until it expires
    assert browsed.outcome is BrowserOutcome.RETURNED
    view = rig.sim.transaction(reference_no=rig.ref("ovo-ignored"))
    assert (view.state, view.status) == ("expired", "5")
    payment = rig.engine.get(started.instance.id)
    assert payment.state == "expired"
    assert rig.events(payment.id)[4:] == [
        *BY_CALLBACK,
        ("expire_payment", "expired", "status_inquiry"),
    ]
    settled_once(rig, payment, "expired", "5")


@pytest.mark.parametrize("wallet", [Wallet.DANA, Wallet.SHOPEEPAY, Wallet.LINKAJA])
def test_abandoned_payment_expires_with_status_5(rig: Rig, wallet: Wallet) -> None:
    """The general table for every wallet: LinkAja too reports its expiry as 5."""
    name = f"gone-{wallet}"
    started = rig.start(name, wallet, CustomerAction.ABANDON)
    assert rig.browse(started).outcome is BrowserOutcome.ABANDONED
    payment_id = started.instance.id
    assert rig.engine.get(payment_id).state == "redirected_to_partner"  # nobody told us anything

    pending = rig.check(payment_id)  # the deadline's check while the customer may still pay
    assert pending.state == "payment_pending"
    assert rig.history(payment_id)[-1].payload["status"] == "3"

    assert rig.wait_sim(rig.ref(name), "expired") == "expired"
    assert rig.sim.transaction(reference_no=rig.ref(name)).status == "5"
    settled = rig.check(payment_id)
    assert settled.state == "expired"
    assert rig.events(payment_id)[4:] == [
        ("check_status", "status_check_requested", "timer"),
        ("report_pending", "payment_pending", "status_inquiry"),
        ("check_status", "status_check_requested", "timer"),
        ("expire_payment", "expired", "status_inquiry"),
    ]
    settled_once(rig, settled, "expired", "5")


def test_linkaja_declined_fails(rig: Rig) -> None:
    started = rig.start("lnk-no", Wallet.LINKAJA, CustomerAction.DECLINE)
    browsed = rig.browse(started)
    assert browsed.outcome is BrowserOutcome.RETURNED
    assert browsed.params["resultCd"] == "9752"
    payment = rig.engine.get(started.instance.id)
    assert payment.state == "failed"
    assert rig.events(payment.id)[4:] == [
        *BY_CALLBACK,
        ("fail_payment", "failed", "status_inquiry"),
    ]
    settled_once(rig, payment, "failed", "8")


# --- notification and callback faults ----------------------------------------------------------


def play_duplicates(rig: Rig, wallet: Wallet) -> None:
    """Three copies of one notification and no callback: one applied, two duplicates."""
    name = f"dup-{wallet}"
    ref = rig.ref(name)
    rig.sim.faults.callback(ref)  # the notification alone drives the payment
    rig.sim.faults.notification(ref, duplicate=2)
    started = rig.start(name, wallet)
    assert rig.browse(started).outcome is BrowserOutcome.CLOSED
    deliveries = rig.deliveries(ref, 3)
    assert [(d.copy, d.status_code) for d in deliveries] == [(0, 200), (1, 200), (2, 200)]
    assert len({tuple(sorted(d.fields.items())) for d in deliveries}) == 1

    payment = rig.engine.get(started.instance.id)
    assert payment.state == "paid"
    events = rig.events(payment.id)
    assert events == [*redirect_steps(wallet), *BY_NOTIFICATION, *PAID]
    assert refused(rig, payment.id, "receive_notification") == [RejectReason.DUPLICATE] * 2
    duplicates = [r for r in rig.rejections(payment.id) if r.event == "receive_notification"]
    assert all(r.detail == "already applied as step 5" for r in duplicates)
    assert refused(rig, payment.id, "confirm_payment") == []  # a redelivery asks nothing again
    settled_once(rig, payment, "paid", "0")


@pytest.mark.parametrize("wallet", REGISTERED_WALLETS)
def test_duplicate_notifications_apply_once(rig: Rig, wallet: Wallet) -> None:
    play_duplicates(rig, wallet)


def test_duplicate_notifications_on_each_database(db_url: str) -> None:
    with open_rig(db_url) as rig:
        play_duplicates(rig, Wallet.DANA)


def test_delayed_notification_after_the_callback_is_stale(rig: Rig) -> None:
    ref = rig.ref("late")
    rig.sim.faults.notification(ref, delay=0.8)
    started = rig.start("late", Wallet.DANA)
    assert rig.browse(started).outcome is BrowserOutcome.RETURNED
    assert rig.engine.get(started.instance.id).state == "paid"  # the callback's check settled

    [delivery] = rig.deliveries(ref, 1)
    assert delivery.status_code == 200  # answered with success all the same
    payment = rig.engine.get(started.instance.id)
    assert payment.state == "paid"
    assert rig.events(payment.id)[4:] == [*BY_CALLBACK, *PAID]
    assert refused(rig, payment.id, "receive_notification") == [RejectReason.STALE]
    settled_once(rig, payment, "paid", "0")


def test_dropped_notification_settles_through_the_callback(rig: Rig) -> None:
    ref = rig.ref("nonote")
    rig.sim.faults.notification(ref, drop=True)
    started = rig.start("nonote", Wallet.LINKAJA)
    assert rig.browse(started).outcome is BrowserOutcome.RETURNED
    [delivery] = rig.deliveries(ref, 1)
    assert delivery.dropped
    assert delivery.status_code is None
    payment = rig.engine.get(started.instance.id)
    assert payment.state == "paid"
    assert rig.events(payment.id)[4:] == [*BY_CALLBACK, *PAID]
    assert refused(rig, payment.id, "receive_notification") == []
    settled_once(rig, payment, "paid", "0")


def test_dropped_callback_settles_through_the_notification(rig: Rig) -> None:
    ref = rig.ref("nocb")
    rig.sim.faults.callback(ref)
    started = rig.start("nocb", Wallet.OVO)
    assert rig.browse(started).outcome is BrowserOutcome.CLOSED  # never back at the merchant
    rig.deliveries(ref, 1)
    payment = rig.engine.get(started.instance.id)
    assert payment.state == "paid"
    assert rig.events(payment.id)[4:] == [*BY_NOTIFICATION, *PAID]
    callbacks = [r for r in rig.rejections(payment.id) if r.actor == Actor.BROWSER_CALLBACK]
    assert callbacks == []
    settled_once(rig, payment, "paid", "0")


def test_reordered_notification_arrives_after_the_callback(rig: Rig) -> None:
    ref = rig.ref("reorder")
    rig.sim.faults.notification(ref, reorder=True)
    started = rig.start("reorder", Wallet.SHOPEEPAY)
    assert rig.browse(started).outcome is BrowserOutcome.RETURNED
    [delivery] = rig.deliveries(ref, 1)
    payment = rig.engine.get(started.instance.id)
    assert payment.state == "paid"
    assert delivery.sent_at is not None
    # Held back, the notification meets the callback's check in some state or other (how far
    # that check got is timing); whichever, the one delivery is applied or refused, never lost,
    # and it never settles a second time.
    applied = [r for r in rig.history(payment.id) if r.event == "receive_notification"]
    refusals = [r for r in rig.rejections(payment.id) if r.event == "receive_notification"]
    assert len(applied) + len(refusals) == 1
    assert all(r.reason in (RejectReason.STALE, RejectReason.NOT_ALLOWED) for r in refusals)
    settled_once(rig, payment, "paid", "0")


def test_duplicated_and_reordered_notifications(rig: Rig) -> None:
    ref = rig.ref("hostile")
    rig.sim.faults.notification(ref, duplicate=2, reorder=True)
    started = rig.start("hostile", Wallet.DANA)
    assert rig.browse(started).outcome is BrowserOutcome.RETURNED
    rig.deliveries(ref, 3)
    payment = rig.engine.get(started.instance.id)
    assert payment.state == "paid"
    assert rig.events(payment.id)[4:] == [*BY_CALLBACK, *PAID]
    # No copy applies: nothing was applied under their shared key, so each is judged afresh.
    reasons = refused(rig, payment.id, "receive_notification")
    assert len(reasons) == 3
    assert set(reasons) <= {RejectReason.STALE, RejectReason.DUPLICATE, RejectReason.NOT_ALLOWED}
    settled_once(rig, payment, "paid", "0")


def test_forged_token_is_refused_and_the_genuine_notification_settles(rig: Rig) -> None:
    ref = rig.ref("forged")
    rig.sim.faults.callback(ref)
    rig.sim.faults.notification(ref, forge_token=True)
    started = rig.start("forged", Wallet.DANA)
    rig.browse(started)
    [forged] = rig.deliveries(ref, 1)
    assert forged.status_code == 401
    payment = rig.engine.get(started.instance.id)
    assert payment.state == "redirected_to_partner"  # nothing applied from it
    assert rig.events(payment.id) == redirect_steps(Wallet.DANA)
    [refusal] = rig.rejections(payment.id)
    assert (refusal.event, refusal.reason) == ("receive_notification", RejectReason.UNVERIFIED)
    assert refusal.actor == Actor.PROVIDER_NOTIFICATION
    assert refusal.payload["merchantToken"] == "[redacted]"

    rig.sim.send_notification(payment.tx_id or "")  # NICEPAY's genuine one, later
    genuine = rig.deliveries(ref, 2)[1]
    assert genuine.status_code == 200
    payment = rig.engine.get(payment.id)
    assert payment.state == "paid"
    assert rig.events(payment.id)[4:] == [*BY_NOTIFICATION, *PAID]
    settled_once(rig, payment, "paid", "0")


@pytest.mark.parametrize("switch", ["fault", "config"])
def test_json_notifications_settle(sqlite_url: str, switch: str) -> None:
    config = sim_config(notification_format="json") if switch == "config" else sim_config()
    with open_rig(sqlite_url, config) as rig:
        ref = rig.ref("json")
        rig.sim.faults.callback(ref)
        if switch == "fault":
            rig.sim.faults.notification(ref, json=True)
        started = rig.start("json", Wallet.OVO)
        rig.browse(started)
        [delivery] = rig.deliveries(ref, 1)
        assert (delivery.body_format, delivery.status_code) == ("json", 200)
        payment = rig.engine.get(started.instance.id)
        assert payment.state == "paid"
        assert rig.events(payment.id)[4:] == [*BY_NOTIFICATION, *PAID]
        assert rig.history(payment.id)[4].payload["tXid"] == payment.tx_id
        settled_once(rig, payment, "paid", "0")


def test_forged_paid_status_on_an_unpaid_transaction_does_not_pay(sqlite_url: str) -> None:
    with open_rig(sqlite_url, sim_config(expiry=LONG_EXPIRY)) as rig:
        ref = rig.ref("fake-paid")
        started = rig.start("fake-paid", Wallet.DANA, CustomerAction.ABANDON)
        assert rig.browse(started).outcome is BrowserOutcome.ABANDONED
        tx_id = started.instance.tx_id or ""
        assert rig.sim.transaction(tx_id).status == "3"

        # A replayed body with a valid token: T3 does not cover status, so it says "paid".
        rig.sim.faults.notification(ref, forged_status="0")
        rig.sim.send_notification(tx_id, status="1")
        [forged] = rig.deliveries(ref, 1)
        assert (forged.fields["status"], forged.status_code) == ("0", 200)
        payment = rig.engine.get(started.instance.id)
        assert payment.state == "payment_pending"  # accepted, but the inquiry said unpaid
        assert rig.events(payment.id)[4:] == [
            *BY_NOTIFICATION,
            ("report_pending", "payment_pending", "status_inquiry"),
        ]
        assert rig.history(payment.id)[-1].payload["status"] == "3"
        assert rig.settlements(payment.id) == []

        assert rig.sim.approve(tx_id)  # the customer really pays afterwards
        genuine = rig.deliveries(ref, 2)[1]
        assert (genuine.fields["status"], genuine.status_code) == ("0", 200)
        payment = rig.engine.get(payment.id)
        # The genuine notification's verified values (tXid, amount, status) are the forged
        # one's, whatever its time says: it is absorbed as a redelivery (no second inquiry), and
        # the pending state's deadline check settles.
        assert payment.state == "payment_pending"
        assert refused(rig, payment.id, "receive_notification") == [RejectReason.DUPLICATE]
        payment = rig.check(payment.id)
        assert payment.state == "paid"
        settled_once(rig, payment, "paid", "0")


def test_forged_reversal_status_on_a_paid_transaction_keeps_it_paid(rig: Rig) -> None:
    ref = rig.ref("fake-void")
    rig.sim.faults.callback(ref)
    rig.sim.faults.notification(ref, forged_status="1")
    started = rig.start("fake-void", Wallet.LINKAJA)
    rig.browse(started)
    [delivery] = rig.deliveries(ref, 1)
    assert delivery.fields["status"] == "1"
    payment = rig.engine.get(started.instance.id)
    assert payment.state == "paid"
    assert rig.events(payment.id)[4:] == [*BY_NOTIFICATION, *PAID]
    settled_once(rig, payment, "paid", "0")


# --- NICEPAY answering badly -----------------------------------------------------------------


def inquiry_failures(caplog: pytest.LogCaptureFixture, kind: str) -> int:
    """How many inquiries the client logged as failed with ``kind``."""
    return sum(
        1
        for record in caplog.records
        if record.name == "adapters.nicepay.client"
        and getattr(record, "operation", None) == "inquiry"
        and getattr(record, "result_cd", None) == kind
    )


def test_inquiry_5xx_once_is_retried_within_the_same_check(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="adapters.nicepay.client")
    ref = rig.ref("inq503")
    rig.sim.faults.callback(ref)
    rig.sim.faults.response(INQUIRY, status=503)
    started = rig.start("inq503", Wallet.DANA)
    rig.browse(started)
    rig.deliveries(ref, 1)
    payment = rig.engine.get(started.instance.id)
    assert payment.state == "paid"  # the client's retry got the answer
    assert inquiry_failures(caplog, "ProviderUnavailable") == 1
    assert rig.events(payment.id)[4:] == [*BY_NOTIFICATION, *PAID]
    settled_once(rig, payment, "paid", "0")


def test_inquiry_5xx_on_every_try_leaves_the_check_to_a_later_one(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="adapters.nicepay.client")
    ref = rig.ref("inq503x3")
    rig.sim.faults.callback(ref)
    rig.sim.faults.response(INQUIRY, status=503, times=3)  # the client's three tries
    started = rig.start("inq503x3", Wallet.DANA)
    rig.browse(started)
    [delivery] = rig.deliveries(ref, 1)
    assert delivery.status_code == 200  # the notification is still acknowledged
    payment_id = started.instance.id
    assert rig.engine.get(payment_id).state == "status_check_requested"
    assert inquiry_failures(caplog, "ProviderUnavailable") == 3

    payment = rig.check(payment_id)  # the check state's deadline
    assert payment.state == "paid"
    assert rig.events(payment_id)[4:] == [*BY_NOTIFICATION, TIMER_CHECK, *PAID]
    settled_once(rig, payment, "paid", "0")


def test_inquiry_timeout_is_handled_and_a_later_check_settles(sqlite_url: str) -> None:
    short = httpx.Timeout(5.0, read=0.3)
    retry = InquiryRetry(attempts=2, base_delay=0.01, max_delay=0.01)
    with open_rig(sqlite_url, api_timeout=short, inquiry_retry=retry) as rig:
        ref = rig.ref("inq-slow")
        rig.sim.faults.callback(ref)
        rig.sim.faults.response(INQUIRY, timeout=True, times=2)
        started = rig.start("inq-slow", Wallet.SHOPEEPAY)
        rig.browse(started)
        [delivery] = rig.deliveries(ref, 1)
        assert delivery.status_code == 200  # the handler caught the ProviderTimeout
        payment_id = started.instance.id
        assert rig.engine.get(payment_id).state == "status_check_requested"

        rig.sim.faults.response(INQUIRY, timeout=True, times=2)
        with pytest.raises(ProviderTimeout):  # a caller of check_status sees the typed error
            rig.check(payment_id)
        assert rig.engine.get(payment_id).state == "status_check_requested"

        payment = rig.check(payment_id)
        assert payment.state == "paid"
        # Each timer check is logged (the failed one too), then the answer settles.
        assert rig.events(payment_id)[4:] == [*BY_NOTIFICATION, TIMER_CHECK, TIMER_CHECK, *PAID]
        settled_once(rig, payment, "paid", "0")


def test_slow_responses_still_settle(rig: Rig) -> None:
    for path in (REGISTRATION, PAYMENT, INQUIRY):
        rig.sim.faults.response(path, slow=0.2, times=None)
    started = rig.start("slow", Wallet.LINKAJA)
    assert rig.browse(started).outcome is BrowserOutcome.RETURNED
    rig.deliveries(rig.ref("slow"), 1)
    payment = rig.engine.get(started.instance.id)
    assert payment.state == "paid"
    assert payment.reference_no == rig.ref("slow")
    settled_once(rig, payment, "paid", "0")


@pytest.mark.parametrize(
    ("name", "fault", "renamed"),
    [
        ("r503", {"status": 503}, False),  # refused unprocessed: the resend registers it
        ("r503lost", {"status": 503, "process": True}, True),  # registered, answer lost: 9009
        ("rtimeout", {"timeout": True}, True),  # registered, then no answer: 9009
        ("rtimeout-np", {"timeout": True, "process": False}, False),
    ],
)
def test_registration_recovers_and_charges_once(
    sqlite_url: str, name: str, fault: dict[str, Any], renamed: bool
) -> None:
    short = httpx.Timeout(5.0, read=0.5)
    with open_rig(sqlite_url, api_timeout=short) as rig:
        order_ref = rig.ref(name)
        rig.sim.faults.response(REGISTRATION, **fault)
        started = rig.start(name, Wallet.DANA)
        payment = started.instance
        stored_ref = payment.reference_no or ""
        if renamed:
            assert stored_ref.startswith(f"{order_ref}-")
            assert len(stored_ref) == len(order_ref) + 9
            orphan = rig.sim.transaction(reference_no=order_ref)
            assert orphan.tx_id != payment.tx_id
        else:
            assert stored_ref == order_ref
        # The stored transaction is the one NICEPAY knows under the stored referenceNo.
        assert rig.sim.transaction(reference_no=stored_ref).tx_id == payment.tx_id
        [accepted] = [r for r in rig.history(payment.id) if r.event == "accept_registration"]
        assert accepted.payload["reference_no"] == stored_ref

        rig.sim.script_customer(reference_no=stored_ref, action=CustomerAction.PAY)
        assert rig.browse(started).outcome is BrowserOutcome.RETURNED
        rig.deliveries(stored_ref, 1)
        payment = rig.engine.get(payment.id)
        assert payment.state == "paid"
        settled_once(rig, payment, "paid", "0")
        assert sim_paid(rig, order_ref) == [stored_ref]  # NICEPAY charged the order once


# --- late news after settling ----------------------------------------------------------------


def test_late_notification_after_paid_is_stale(rig: Rig) -> None:
    ref = rig.ref("late-note")
    rig.sim.faults.notification(ref, drop=True)
    started = rig.start("late-note", Wallet.DANA)
    browsed = rig.browse(started)
    payment = rig.engine.get(started.instance.id)
    assert payment.state == "paid"  # by the callback's check
    tx_id = payment.tx_id or ""

    rig.sim.send_notification(tx_id)  # NICEPAY's late redelivery of the lost one
    assert rig.deliveries(ref, 2)[1].status_code == 200
    assert rig.engine.get(payment.id).state == "paid"
    assert refused(rig, payment.id, "receive_notification") == [RejectReason.STALE]

    # The very same return again: a paid payment takes none, so only the journal keeps it.
    reload = reload_callback(rig, browsed)
    assert (reload.status_code, shown_outcome(reload.text)) == (200, "paid")
    assert refused(rig, payment.id, "return_from_partner") == []
    assert journalled(rig, payment.id) == "not_applied"

    assert confirm_order(rig, payment.id).state == "order_confirmed"
    rig.sim.send_notification(tx_id, status="1")  # even a reversal claim moves nothing
    rig.deliveries(ref, 3)
    final = rig.engine.get(payment.id)
    assert final.state == "order_confirmed"
    assert refused(rig, payment.id, "receive_notification") == [RejectReason.STALE] * 2
    settled_once(rig, final, "paid", "0")


def test_late_callback_after_paid_is_stale(rig: Rig) -> None:
    ref = rig.ref("late-cb")
    rig.sim.faults.callback(ref)
    started = rig.start("late-cb", Wallet.OVO)
    assert rig.browse(started).outcome is BrowserOutcome.CLOSED
    rig.deliveries(ref, 1)
    payment = rig.engine.get(started.instance.id)
    assert payment.state == "paid"  # by the notification's check

    late = return_later(rig, payment.tx_id or "")  # the customer reopens NICEPAY's result page
    assert late.outcome is BrowserOutcome.RETURNED
    assert late.params["resultCd"] == "0000"
    final = rig.engine.get(payment.id)
    assert (final.state, final.version) == ("paid", payment.version)
    assert refused(rig, payment.id, "return_from_partner") == []  # unauthenticated: journal only
    assert journalled(rig, payment.id) == "not_applied"
    settled_once(rig, final, "paid", "0")


def test_late_paid_notification_after_a_failure_is_stale(rig: Rig) -> None:
    started = rig.start("failed-late", Wallet.LINKAJA, CustomerAction.DECLINE)
    browsed = rig.browse(started)
    payment = rig.engine.get(started.instance.id)
    assert payment.state == "failed"

    rig.sim.send_notification(payment.tx_id or "", status="0")  # valid token, wrong story
    assert rig.deliveries(rig.ref("failed-late"), 1)[0].status_code == 200
    assert shown_outcome(reload_callback(rig, browsed).text) == "failed"
    final = rig.engine.get(payment.id)
    assert (final.state, final.version) == ("failed", payment.version)  # nothing applied
    assert refused(rig, payment.id, "receive_notification") == [RejectReason.STALE]
    assert refused(rig, payment.id, "return_from_partner") == []
    assert journalled(rig, payment.id) == "not_applied"
    # A settled payment's notification costs an inquiry only when it claims a reversal: this
    # one claims a deposit, and the reloaded return is journalled only, so nothing asked again.
    assert refused(rig, payment.id, "fail_payment") == []
    settled_once(rig, final, "failed", "8")


def test_callback_query_identifies_the_transaction(rig: Rig) -> None:
    """The browser returns with the §8 fields; the merchant keys its lookup on tXid."""
    started = rig.start("cb-fields", Wallet.DANA)
    browsed = rig.browse(started)
    query = dict(parse_qsl(urlsplit(browsed.final_url).query))
    assert query["tXid"] == started.instance.tx_id
    assert query["referenceNo"] == rig.ref("cb-fields")
    assert query["amt"] == AMOUNT
    assert query["mitraCd"] == "DANA"
    rig.deliveries(rig.ref("cb-fields"), 1)
    settled_once(rig, rig.engine.get(started.instance.id), "paid", "0")


def test_every_payment_in_a_busy_rig_replays(rig: Rig) -> None:
    """Several wallets and outcomes side by side in one database, then the whole store audited."""
    plays = [
        ("busy-ovo", Wallet.OVO, CustomerAction.PAY),
        ("busy-dana", Wallet.DANA, CustomerAction.DECLINE),
        ("busy-lnk", Wallet.LINKAJA, CustomerAction.PAY),
        ("busy-shp", Wallet.SHOPEEPAY, CustomerAction.DECLINE),
    ]
    for name, wallet, action in plays:
        rig.sim.faults.notification(rig.ref(name), duplicate=1, reorder=True)
        rig.browse(rig.start(name, wallet, action))
    for name, _wallet, action in plays:
        if action is CustomerAction.PAY:
            rig.deliveries(rig.ref(name), 2)
    states = {name: rig.engine.get(f"pay-{rig.merchant.run}-{name}").state for name, _, _ in plays}
    assert states == {
        "busy-ovo": "paid",
        "busy-dana": "failed",
        "busy-lnk": "paid",
        "busy-shp": "failed",
    }
    for instance in database(rig.engine).list_instances():
        assert_replays(rig.engine, instance)
        assert_settled_by_inquiry(rig.engine, instance.id)


def test_the_audit_catches_a_settlement_without_an_inquiry(sqlite_url: str) -> None:
    """The suite's invariant is not vacuous: an operator's settlement replays, but fails it."""
    store = SqlStore(sqlite_url)
    store.create_schema()
    engine = Engine(store, flows=FLOWS)
    payment = engine.start("ewallet_payment", wallet=Wallet.DANA, amount=AMOUNT, reference_no="X")
    steps: list[tuple[str, Actor, dict[str, str] | None]] = [
        ("send_registration", Actor.MERCHANT, None),
        ("accept_registration", Actor.PROVIDER_RESPONSE, {"tx_id": "T1", "reference_no": "X"}),
        ("check_status", Actor.MERCHANT, None),
        ("confirm_payment", Actor.OPERATOR, {"status": "0"}),
    ]
    for event, actor, payload in steps:
        engine.fire(payment.id, event, actor=actor, idempotency_key=event, payload=payload)
    try:
        assert_replays(engine, engine.get(payment.id))
        with pytest.raises(AssertionError, match="operator"):
            assert_settled_by_inquiry(engine, payment.id)
    finally:
        store.dispose()


def test_a_forged_astrapay_callback_cannot_bind_another_transactions_txid(rig: Rig) -> None:
    """The forged tXid belongs to another payment whose referenceNo differs: refused there."""
    link = rig.link("acct")
    other = rig.start("astra-other", Wallet.ASTRAPAY, link_id=link.id)
    assert rig.browse(other).outcome is BrowserOutcome.RETURNED
    victim_tx = rig.engine.get(other.instance.id).tx_id
    assert victim_tx
    ref = rig.ref("astra-target")
    rig.sim.script_customer(reference_no=ref, action="abandon")
    target = rig.start("astra-target", Wallet.ASTRAPAY, link_id=link.id)
    forged = {"tXid": victim_tx, "referenceNo": ref, "resultCd": "0000"}
    before = rig.engine.get(target.instance.id)
    assert rig.http.get(rig.service.callback_url, params=forged).status_code == 400
    assert rig.engine.get(target.instance.id) == before  # untouched, no tXid bound
    refusals = [r for r in rig.rejections(other.instance.id) if r.event == "browser_return"]
    assert [r.reason.value for r in refusals] == ["unverified"]
