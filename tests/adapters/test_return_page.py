"""The customer's browser back from the wallet: told where the order stands, and nothing else.

With a return URL of the merchant's, the browser is sent there (303) with the order's reference
and a coarse outcome; without one, it gets a status page that reloads itself while the payment
is pending. Neither answer carries the payment's internal id or state, or any JSON.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from adapters.inbound.handler import NotificationHandler
from adapters.inbound.return_page import REFRESH_SECONDS, CustomerOutcome, ReturnPage, status_page
from adapters.reconcile.worker import StatusWorker
from fsm import Engine, ManualClock, MemoryStore
from fsm.errors import ConfigurationError
from fsm.flows import FLOWS
from tests.adapters.mock_nicepay import ServiceRig
from tests.adapters.pages import shown_outcome
from tests.adapters.test_astrapay_hints import at_nicepay, returned, submitted
from tests.adapters.worked import WorkedHandler
from tests.fsm.conftest import T0
from tests.fsm.test_events import to_paid

RETURN_URL = "https://shop.example/orders/back?from=wallet"


def test_a_paid_return_is_sent_to_the_merchants_page_with_the_reference_only(
    rig: ServiceRig,
) -> None:
    handler = NotificationHandler(rig.service, return_url=RETURN_URL)
    payment = submitted(rig)
    back = returned(payment, at_nicepay(rig, payment))
    first = handler.handle_callback(back)  # answered before NICEPAY is asked
    assert parse_qs(urlsplit(dict(first.headers)["location"]).query)["outcome"] == ["pending"]
    StatusWorker(rig.service).drain()
    assert rig.engine.get(payment.id).state == "paid"
    reply = handler.handle_callback(back)  # the customer's reload
    location = dict(reply.headers)["location"]
    target = urlsplit(location)
    assert (reply.status, location.split("?")[0]) == (303, RETURN_URL.split("?")[0])
    assert parse_qs(target.query) == {
        "from": ["wallet"],
        "referenceNo": [payment.reference_no],
        "outcome": ["paid"],
    }
    assert (reply.body, reply.html) == ({}, None)
    assert dict(reply.headers)["cache-control"] == "no-store"


def test_without_a_return_url_a_pending_payment_gets_a_page_that_reloads(
    rig: ServiceRig, handler: NotificationHandler
) -> None:
    payment = submitted(rig)
    reply = handler.handle_callback(returned(payment, at_nicepay(rig, payment, status="3")))
    page = reply.html or ""
    assert (reply.status, shown_outcome(page)) == (200, "pending")
    assert f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' in page
    assert (payment.reference_no or "?") in page
    stored = rig.engine.get(payment.id)
    assert (payment.id not in page, stored.state not in page) == (True, True)

    rig.sim.approve(rig.tx_id(payment.reference_no or ""))
    rig.service.check_status(payment.id)
    settled = WorkedHandler(rig.service).handle_callback(returned(payment, stored.tx_id or ""))
    assert shown_outcome(settled.html) == "paid"
    assert "refresh" not in (settled.html or "")


def test_a_reference_is_shown_escaped() -> None:
    page = status_page("ORD-<b>&", CustomerOutcome.PENDING)
    assert "Order ORD-&lt;b&gt;&amp;" in page
    assert "<b>" not in page


@pytest.mark.parametrize(
    "url", ["/orders/back", "ftp://shop.example/back", "https://shop.example/back#frag", "x"]
)
def test_a_return_url_must_be_absolute_http(rig: ServiceRig, url: str) -> None:
    with pytest.raises(ConfigurationError):
        WorkedHandler(rig.service, return_url=url)


def test_a_refunded_payment_is_told_refunded_and_the_page_stops_reloading() -> None:
    clock = ManualClock(T0)
    engine = Engine(MemoryStore(), flows=FLOWS, clock=clock)
    pid = to_paid(engine, clock)
    engine.fire(
        pid,
        "refund_payment",
        actor="status_inquiry",
        idempotency_key="refunded",
        payload={"refunded_amount": "25000"},
    )
    refunded = engine.get(pid)
    reply = ReturnPage().reply(engine.flow_of(refunded), refunded)
    assert (reply.status, shown_outcome(reply.html)) == (200, "refunded")
    assert "refresh" not in (reply.html or "")
