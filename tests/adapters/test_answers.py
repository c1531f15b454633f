"""What each wallet adapter answers without I/O, and how the registry dispatches to it.

A notification, a browser return and an inquiry's code are answered by the adapter of the
instance's flow and wallet; an instance no adapter serves is refused, never guessed at.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import text

from adapters.errors import UnknownAdapter
from adapters.inbound.handler import NotificationHandler
from adapters.wallets.answers import NotificationKind, Notified
from adapters.wallets.registry import ACCOUNT_LINK, ADAPTERS, adapter_for, adapter_of
from fsm.flows import (
    ASTRAPAY_LINK,
    ASTRAPAY_PAYMENT,
    EWALLET_PAYMENT,
    AstrapayPaymentEvent,
    LinkEvent,
    PaymentEvent,
)
from fsm.model import Instance
from fsm.store.sql import SqlStore
from tests.adapters.mock_nicepay import ServiceRig
from tests.adapters.test_refunded_total import PAID
from tests.adapters.values import IMID, form_request, payment_order
from tests.adapters.values import signed_notification as notification

TX_ID = f"{IMID}0501202502010035120001"


def instance(flow: str, wallet: str, **fields: Any) -> Instance:
    """A payment of 12000 with no tXid yet, of ``flow`` and ``wallet``."""
    return replace(PAID, id="x-1", flow=flow, wallet=wallet, tx_id=None, **fields)


def test_every_instance_is_answered_by_the_adapter_of_its_flow_and_wallet() -> None:
    for wallet, adapter in ADAPTERS.items():
        assert adapter_of(instance(adapter.flow, wallet)) is adapter_for(wallet)
    assert adapter_of(instance(ASTRAPAY_LINK.name, "astrapay")) is ACCOUNT_LINK
    with pytest.raises(UnknownAdapter) as raised:
        adapter_of(instance(EWALLET_PAYMENT.name, "astrapay"))
    assert "astrapay_link/astrapay" in raised.value.known


@pytest.mark.parametrize("wallet", sorted(ADAPTERS))
def test_a_payment_notification_is_keyed_on_what_t3_signed_and_an_inquiry_decides(
    wallet: str,
) -> None:
    adapter = adapter_for(wallet)
    payment = instance(adapter.flow, wallet)
    params = {"tXid": TX_ID, "status": "1", "transTm": "003512", "junk": "x"}

    notified = adapter.on_notification(payment, params, imid=IMID, mandate_fields=())
    varied = adapter.on_notification(
        payment, {**params, "transTm": "999999"}, imid=IMID, mandate_fields=()
    )

    assert adapter.notification_kind is NotificationKind.TRANSACTION
    assert notified == varied  # unsigned fields buy no new key
    assert notified == Notified(
        PaymentEvent.RECEIVE_NOTIFICATION,
        f"notification:{IMID}:{TX_ID}:12000:reversal",
        {"tx_id": TX_ID},
        inquire=True,
        claims_reversal=True,
    )


@pytest.mark.parametrize(
    ("params", "event", "binds"),
    [
        ({"status": "1", "mandateID": "M-1"}, LinkEvent.FAIL_LINK, {}),
        ({"status": "0", "mandateId": "M-2"}, LinkEvent.CONFIRM_LINK, {"mandate": "M-2"}),
        ({"status": "0", "mandateID": ""}, LinkEvent.CONFIRM_LINK_WITHOUT_MANDATE, {}),
    ],
)
def test_a_link_notification_decides_by_its_status_and_mandate(
    params: dict[str, str], event: str, binds: dict[str, str]
) -> None:
    link = instance(ASTRAPAY_LINK.name, "astrapay")
    signed = {"referenceNo": "LNK-1", "billingPhone": "0812", **params}

    notified = ACCOUNT_LINK.on_notification(
        link, signed, imid=IMID, mandate_fields=("mandateID", "mandateId")
    )

    assert ACCOUNT_LINK.notification_kind is NotificationKind.ACCOUNT_LINK
    assert (notified.event, dict(notified.binds), notified.inquire) == (event, binds, False)
    assert notified.key.startswith(f"link-notification:{IMID}:LNK-1:0812:")


def test_browser_returns_name_their_event_and_whether_a_status_check_follows() -> None:
    answers = {
        flow: adapter_of(instance(flow, wallet)).on_return(instance(flow, wallet))
        for flow, wallet in [
            (EWALLET_PAYMENT.name, "dana"),
            (ASTRAPAY_PAYMENT.name, "astrapay"),
            (ASTRAPAY_LINK.name, "astrapay"),
        ]
    }
    summary = {flow: (a.event, a.checks_status, a.keeps_tx_id_hint) for flow, a in answers.items()}
    assert summary == {
        EWALLET_PAYMENT.name: (PaymentEvent.RETURN_FROM_PARTNER, True, False),
        ASTRAPAY_PAYMENT.name: (AstrapayPaymentEvent.RECEIVE_CALLBACK, True, True),
        ASTRAPAY_LINK.name: ("browser_return", False, False),
    }


def test_only_astrapay_reads_an_8_after_payment_as_a_refund() -> None:
    for wallet, adapter in ADAPTERS.items():
        expected = (
            PaymentEvent.REFUND_PAYMENT if wallet == "astrapay" else PaymentEvent.FAIL_PAYMENT
        )
        assert adapter.inquiry_event("8", "paid") == expected
        assert adapter.inquiry_event("8", "status_check_requested") == PaymentEvent.FAIL_PAYMENT
        assert adapter.inquiry_event("7", "paid") is None
    assert ACCOUNT_LINK.inquiry_event("0", "created") is None


def test_a_notification_about_an_instance_no_adapter_serves_is_refused_unnoted(
    rig: ServiceRig, handler: NotificationHandler, store: SqlStore
) -> None:
    payment = rig.service.start_payment(payment_order("dana"), payment_id="pay-1").instance
    with store.engine.begin() as conn:  # a row another application wrote, or a damaged one
        conn.execute(text("UPDATE flow_instance SET wallet = 'gopay' WHERE id = 'pay-1'"))

    reply = handler.handle_notification(form_request(notification(payment)))
    back = handler.handle_callback(form_request({"tXid": payment.tx_id or ""}))

    assert (reply.status, reply.body["error"]) == (404, "UnknownTransaction")
    assert (back.status, back.body["error"]) == (404, "UnknownTransaction")
    assert rig.engine.get(payment.id).version == payment.version
    assert rig.engine.rejections(payment.id) == []
    attempts = rig.service.inbound.latest()
    assert [(a.error, a.instance_id) for a in attempts] == [("UnknownTransaction", None)] * 2
    for answer in (reply, back):  # worded as for no payment at all: no id, no flow names
        assert answer.body["message"].startswith("no single payment for tXid")
        assert "pay-1" not in answer.body["message"]
        assert "gopay" not in answer.body["message"]
