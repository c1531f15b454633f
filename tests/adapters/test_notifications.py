"""NICEPAY's notifications and the browser's returns: the handler directly, and the ASGI app on
loopback over real HTTP.

The service behind the handler runs on a real engine and store (SQLite and PostgreSQL); its
inquiries go to the simulator in-process. Tokens are computed here with hashlib, not with the
library's own functions. Reference §8 and §11: a verified notification (T3) only triggers an
inquiry, the browser return is a hint that triggers one too, and only the inquiry settles.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from adapters.errors import NotificationSignatureError
from adapters.inbound.asgi import CALLBACK_PATH, HEALTH_PATH, NOTIFICATION_PATH, NotificationApp
from adapters.inbound.handler import NotificationHandler
from adapters.inbound.parsing import MAX_BODY_BYTES, InboundRequest, verify_notification_token
from adapters.nicepay.config import NicepayCredentials
from adapters.nicepay.tokens import link_enable_token
from adapters.simulator import serve_app
from fsm.definition import Actor
from fsm.errors import RejectReason
from fsm.model import Instance
from tests.adapters.mock_nicepay import (
    ServiceRig,
    delivered,
    link_at_nicepay,
    open_page,
    submit_at_nicepay,
)
from tests.adapters.mock_nicepay import (
    inquiries_sent as inquiries,
)
from tests.adapters.mock_nicepay import (
    logged_events as events,
)
from tests.adapters.pages import shown_outcome
from tests.adapters.values import (
    AMOUNT,
    BASE,
    FORM,
    IMID,
    KEY_TEXT,
    MANDATE,
    PHONE,
    link_notification,
    link_order,
    new_tx_id,
    payment_order,
    sha,
)
from tests.adapters.values import (
    form_request as form,
)
from tests.adapters.values import (
    signed_notification as notification,
)
from tests.adapters.worked import WorkedHandler

NN, BC, SI, M = (
    Actor.PROVIDER_NOTIFICATION,
    Actor.BROWSER_CALLBACK,
    Actor.STATUS_INQUIRY,
    Actor.MERCHANT,
)
OK = {"resultCd": "0000", "resultMsg": "SUCCESS"}


def registered(rig: ServiceRig, wallet: str = "dana", tag: str = "1") -> Instance:
    """A payment registered at NICEPAY, its customer sent on (inquiry status 9)."""
    order = payment_order(wallet, f"ORD-{tag}")
    return rig.service.start_payment(order, payment_id=f"pay-{tag}").instance


def as_json(params: Mapping[str, str]) -> InboundRequest:
    return InboundRequest(body=json.dumps(params).encode(), content_type="application/json")


def braced(params: Mapping[str, str]) -> InboundRequest:
    return InboundRequest(body=json.dumps(params).encode(), content_type="text/plain")


def unlabelled(params: Mapping[str, str]) -> InboundRequest:
    return InboundRequest(body=json.dumps(params).encode())


def query(params: Mapping[str, str]) -> InboundRequest:
    return InboundRequest(query=urlencode(params))


def token_in_body(params: Mapping[str, str]) -> InboundRequest:
    """The parameters in the query string, but the token (never a query parameter) in the body."""
    rest = {name: value for name, value in params.items() if name != "merchantToken"}
    body = urlencode({"merchantToken": params["merchantToken"]}).encode()
    return InboundRequest(body=body, content_type=FORM, query=urlencode(rest))


def stored_text(rig: ServiceRig, instance_id: str) -> str:
    """Every payload stored for the instance, applied or refused, as one JSON text."""
    history = [record.payload for record in rig.engine.history(instance_id)]
    refused = [rejection.payload for rejection in rig.engine.rejections(instance_id)]
    return json.dumps([history, refused])


def assert_no_key_anywhere(
    rig: ServiceRig, instance_id: str, caplog: pytest.LogCaptureFixture, *replies: Any
) -> None:
    assert KEY_TEXT not in stored_text(rig, instance_id)
    assert KEY_TEXT not in json.dumps([reply.body for reply in replies])
    assert caplog.records, "the handler logs what it refuses and applies"
    for record in caplog.records:
        assert KEY_TEXT not in record.getMessage()
        assert KEY_TEXT not in repr(vars(record))


def assert_settled_only_by_inquiry(rig: ServiceRig, instance_id: str) -> None:
    flow = rig.engine.flow(rig.engine.get(instance_id).flow)
    settling = [r for r in rig.engine.history(instance_id) if flow.state(r.dest).settlement]
    assert settling, "the scenario settles the payment"
    assert {record.actor for record in settling} == {SI}


def assert_unchanged(rig: ServiceRig, before: Instance) -> None:
    after = rig.engine.get(before.id)
    assert (after.state, after.version) == (before.state, before.version)


# --- a valid notification ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "encode", [form, as_json, braced, unlabelled, token_in_body], ids=lambda f: f.__name__
)
def test_a_valid_notification_is_acknowledged_recorded_raw_and_settled_by_inquiry(
    rig: ServiceRig,
    handler: NotificationHandler,
    encode: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    payment = registered(rig)
    rig.sim.approve(payment.tx_id or "")
    params = notification(payment)

    reply = handler.handle_notification(encode(params))

    assert (reply.status, reply.body) == (200, OK)
    paid = rig.engine.get(payment.id)
    assert paid.state == "paid"
    assert events(rig, payment.id)[payment.version :] == [
        ("receive_notification", NN),
        ("check_status", M),
        ("confirm_payment", SI),
    ]
    received = rig.engine.history(payment.id)[payment.version]
    parsed = {key: value for key, value in received.payload.items() if key != "raw"}
    assert parsed == {**params, "merchantToken": "[redacted]", "tx_id": payment.tx_id}
    raw = json.dumps(received.payload.get("raw", {}))
    assert params["merchantToken"] not in raw  # the raw request is kept, its token blanked
    assert inquiries(rig) == 1
    assert_settled_only_by_inquiry(rig, payment.id)
    assert_no_key_anywhere(rig, payment.id, caplog, reply)


def test_a_notification_without_amt_is_verified_with_the_stored_amount(
    rig: ServiceRig, handler: NotificationHandler
) -> None:
    payment = registered(rig)
    params = notification(payment)
    del params["amt"]
    assert handler.handle_notification(form(params)).status == 200
    assert rig.engine.get(payment.id).state == "payment_pending"  # inquiry still says 9


def test_a_duplicate_delivery_is_acknowledged_and_applies_nothing_new(
    rig: ServiceRig, handler: NotificationHandler
) -> None:
    payment = registered(rig)
    rig.sim.approve(payment.tx_id or "")
    request = form(notification(payment))
    assert handler.handle_notification(request).status == 200
    paid = rig.engine.get(payment.id)

    again = handler.handle_notification(request)

    assert (again.status, again.body) == (200, OK)
    assert_unchanged(rig, paid)
    assert [e for e, _ in events(rig, payment.id)].count("receive_notification") == 1
    (duplicate,) = rig.engine.rejections(payment.id)
    assert (duplicate.event, duplicate.reason) == ("receive_notification", RejectReason.DUPLICATE)
    assert inquiries(rig) == 1


def test_a_duplicate_while_pending_is_absorbed_without_another_transition(
    rig: ServiceRig, handler: NotificationHandler
) -> None:
    payment = registered(rig)
    open_page(rig, payment)  # NICEPAY: unpaid
    request = form(notification(payment))
    for _ in range(2):
        assert handler.handle_notification(request).status == 200

    assert events(rig, payment.id)[payment.version :] == [
        ("receive_notification", NN),
        ("check_status", M),
        ("report_pending", SI),
    ]
    (duplicate,) = rig.engine.rejections(payment.id)
    assert (duplicate.event, duplicate.reason) == ("receive_notification", RejectReason.DUPLICATE)


# --- refused notifications --------------------------------------------------------------------


def test_a_forged_token_is_refused_recorded_and_leaks_no_key(
    rig: ServiceRig, handler: NotificationHandler, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    payment = registered(rig)
    rig.sim.approve(payment.tx_id or "")
    forged = notification(payment, merchantToken=sha(IMID, payment.tx_id or "", AMOUNT, "guess"))
    missing = notification(payment)
    del missing["merchantToken"]

    replies = [
        handler.handle_notification(form(forged)),
        handler.handle_notification(form(missing)),
    ]

    assert [reply.status for reply in replies] == [401, 401]
    assert replies[0].body["error"] == "NotificationSignatureError"
    assert_unchanged(rig, payment)
    assert inquiries(rig) == 0
    refusals = rig.engine.rejections(payment.id)
    # Each refusal is journalled; the payment notes them once per throttle slot.
    assert [(r.event, r.actor, r.reason) for r in refusals] == [
        ("receive_notification", NN, RejectReason.UNVERIFIED)
    ]
    assert [a.outcome for a in rig.service.inbound.latest(limit=10)] == ["refused"] * 2
    assert refusals[0].payload == {**forged, "merchantToken": "[redacted]"}
    assert_no_key_anywhere(rig, payment.id, caplog, *replies)


def test_an_amount_other_than_the_registered_one_is_refused_even_with_its_token(
    rig: ServiceRig, handler: NotificationHandler
) -> None:
    payment = registered(rig)
    tx_id = payment.tx_id or ""
    other = notification(payment, amt="1200", merchantToken=sha(IMID, tx_id, "1200", KEY_TEXT))
    decimals = notification(
        payment, amt="12000.00", merchantToken=sha(IMID, tx_id, "12000.00", KEY_TEXT)
    )

    for params in (other, decimals):
        reply = handler.handle_notification(form(params))
        assert 400 <= reply.status < 500
        assert "amount" in reply.body["message"]

    assert_unchanged(rig, payment)
    assert inquiries(rig) == 0
    assert [r.reason for r in rig.engine.rejections(payment.id)] == [RejectReason.UNVERIFIED]


def test_a_reference_that_is_not_the_payments_is_refused(
    rig: ServiceRig, handler: NotificationHandler
) -> None:
    payment = registered(rig)
    registered(rig, tag="2")
    reply = handler.handle_notification(form(notification(payment, referenceNo="ORD-2")))
    assert 400 <= reply.status < 500
    assert_unchanged(rig, payment)
    assert inquiries(rig) == 0


def test_an_unknown_transaction_is_404(rig: ServiceRig, handler: NotificationHandler) -> None:
    payment = registered(rig)
    stranger = new_tx_id()
    unknown = notification(
        payment, tXid=stranger, merchantToken=sha(IMID, stranger, AMOUNT, KEY_TEXT)
    )
    alone = {key: value for key, value in unknown.items() if key != "referenceNo"}

    reply = handler.handle_notification(form(unknown))
    assert (reply.status, reply.body["error"]) == (404, "UnknownTransaction")
    assert 400 <= handler.handle_notification(form(alone)).status < 500
    assert_unchanged(rig, payment)
    assert rig.engine.rejections(payment.id) == []


def test_another_merchants_notification_is_refused(
    rig: ServiceRig, handler: NotificationHandler
) -> None:
    payment = registered(rig)
    tx_id = payment.tx_id or ""
    theirs = notification(payment, iMid="OTHERMID01")
    signed = notification(
        payment, iMid="OTHERMID01", merchantToken=sha("OTHERMID01", tx_id, AMOUNT, KEY_TEXT)
    )
    for params in (theirs, signed):
        reply = handler.handle_notification(form(params))
        assert 400 <= reply.status < 500
        assert "iMid" in reply.body["message"]
    assert_unchanged(rig, payment)
    assert inquiries(rig) == 0


def test_an_oversized_body_is_413(rig: ServiceRig, handler: NotificationHandler) -> None:
    payment = registered(rig)
    padded = notification(payment, goodsNm="x" * MAX_BODY_BYTES)
    reply = handler.handle_notification(form(padded))
    assert (reply.status, reply.body["error"]) == (413, "BodyTooLarge")
    assert_unchanged(rig, payment)


def test_malformed_bodies_are_400_and_apply_nothing(
    rig: ServiceRig, handler: NotificationHandler, subtests: pytest.Subtests
) -> None:
    payment = registered(rig)
    valid = notification(payment)
    as_text = json.dumps(valid)
    bodies = {
        "percent-garbage": (b"%%%", FORM),
        "no-equals": (b"tXid", FORM),
        "repeated-field": (urlencode(valid).encode() + b"&tXid=" + b"X" * 30, FORM),
        "not-utf8": (b"tXid=\xff\xfe", FORM),
        "json-with-form-type": (as_text.encode(), FORM),
        "truncated-json": (as_text[:-5].encode(), "application/json"),
        "json-array": (json.dumps([valid]).encode(), "application/json"),
        "float-amount": (as_text.replace('"12000"', "12000.0").encode(), "application/json"),
        "nan-amount": (as_text.replace('"12000"', "NaN").encode(), "application/json"),
        "nested-object": (
            json.dumps({**valid, "amt": {"value": AMOUNT}}).encode(),
            "application/json",
        ),
        "boolean": (json.dumps({**valid, "status": True}).encode(), "application/json"),
        "no-ids": (urlencode({"amt": AMOUNT}).encode(), FORM),
    }
    for name, (body, content_type) in bodies.items():
        with subtests.test(name):
            request = InboundRequest(body=body, content_type=content_type)
            reply = handler.handle_notification(request)
            assert reply.status == 400, reply.body
            assert_unchanged(rig, payment)
            assert KEY_TEXT not in json.dumps(reply.body)
    assert inquiries(rig) == 0


def test_a_merchant_key_cannot_be_configured_empty() -> None:
    with pytest.raises(ValidationError, match="merchant_key is empty"):
        NicepayCredentials(imid=IMID, merchant_key="", base_url=BASE)
    params = {"tXid": "T", "amt": AMOUNT, "merchantToken": sha(IMID, "T", AMOUNT, "")}
    with pytest.raises(NotificationSignatureError, match="no merchant key"):
        verify_notification_token(
            params, imid=IMID, stored_amount=AMOUNT, merchant_key=SecretStr("")
        )


def test_the_source_allowlist_refuses_other_addresses(rig: ServiceRig) -> None:
    payment = registered(rig)
    guarded = WorkedHandler(rig.service, allowed_sources=["103.20.51.0/24"])
    body = urlencode(notification(payment)).encode()

    for address in ("127.0.0.1", None, "not-an-ip", "103.20.52.33"):
        request = InboundRequest(body=body, content_type=FORM, client_ip=address)
        reply = guarded.handle_notification(request)
        assert (reply.status, reply.body["error"]) == (403, "SourceNotAllowed")
    assert_unchanged(rig, payment)

    allowed = InboundRequest(body=body, content_type=FORM, client_ip="103.20.51.33")
    assert guarded.handle_notification(allowed).status == 200


# --- the browser callback ---------------------------------------------------------------------


def callback(payment: Instance, **changes: str) -> dict[str, str]:
    """What the browser brings back to callBackUrl: no signature, a resultCd that proves nothing."""
    params = {
        "resultCd": "0000",
        "resultMsg": "SUCCESS",
        "tXid": payment.tx_id or "",
        "referenceNo": payment.reference_no or "",
        "payMethod": "05",
        "amt": AMOUNT,
        "currency": "IDR",
        "mitraCd": "DANA",
    }
    return {**params, **changes}


@pytest.mark.parametrize("encode", [query, form], ids=["get-query", "post-form"])
def test_a_callback_claiming_success_only_triggers_an_inquiry_which_decides(
    rig: ServiceRig, handler: NotificationHandler, encode: Any
) -> None:
    payment = registered(rig)
    open_page(rig, payment)  # NICEPAY: unpaid

    reply = handler.handle_callback(encode(callback(payment)))

    assert (reply.status, shown_outcome(reply.html)) == (200, "pending")
    assert payment.id not in (reply.html or "")
    assert rig.engine.get(payment.id).state == "payment_pending"
    assert events(rig, payment.id)[payment.version :] == [
        ("return_from_partner", BC),
        ("report_pending", SI),
    ]
    returned = rig.engine.history(payment.id)[payment.version]
    assert (returned.dest, returned.payload["resultCd"]) == ("status_check_requested", "0000")

    again = handler.handle_callback(encode(callback(payment)))  # the browser reloads the page
    assert (again.status, shown_outcome(again.html)) == (200, "pending")
    assert inquiries(rig) == 1

    rig.sim.approve(payment.tx_id or "")  # the customer pays; the next check settles it
    assert rig.service.check_status(payment.id, actor=Actor.TIMER).state == "paid"
    returns = [r for r in rig.engine.history(payment.id) if r.actor == BC]
    assert [r.dest for r in returns] == ["status_check_requested"]  # a return never settles
    assert_settled_only_by_inquiry(rig, payment.id)


def test_a_callback_for_an_unknown_payment_is_404(
    rig: ServiceRig, handler: NotificationHandler
) -> None:
    payment = registered(rig)
    stranger = callback(payment, tXid=new_tx_id(), referenceNo="ORD-404")
    for request in (query(stranger), form(stranger)):
        assert handler.handle_callback(request).status == 404
    assert handler.handle_callback(query({"resultCd": "0000"})).status == 400
    assert_unchanged(rig, payment)
    assert inquiries(rig) == 0


# --- AstraPay: the link notification (T4) and the callback that may carry the mandate -----------


def test_the_link_token_is_t4() -> None:
    key = SecretStr(KEY_TEXT)
    assert link_enable_token(IMID, "LNK-1", PHONE, key) == sha(IMID, "LNK-1", PHONE, KEY_TEXT)


def test_a_link_notification_with_a_mandate_links_the_account_and_it_pays(
    rig: ServiceRig, handler: NotificationHandler
) -> None:
    started = rig.service.start_link(link_order())
    link = started.instance
    mandate = link_at_nicepay(rig, started)

    reply = handler.handle_notification(form(delivered(rig, "link", "LNK-1")))

    assert (reply.status, reply.body) == (200, OK)
    linked = rig.engine.get(link.id)
    assert (linked.state, linked.mandate) == ("linked", mandate)
    (confirmed,) = rig.engine.history(link.id)
    assert (confirmed.event, confirmed.actor) == ("confirm_link", NN)
    assert (confirmed.payload["mandateID"], confirmed.payload["merchantToken"]) == (
        mandate,
        "[redacted]",
    )

    order = payment_order("astrapay", "ORD-A", link_id=link.id)
    paying = rig.service.start_payment(order, payment_id="pay-a")
    assert paying.step.fields["mandateID"] == mandate
    tx_id = submit_at_nicepay(rig, paying)
    rig.sim.approve(tx_id)
    paid = handler.handle_notification(form(delivered(rig, "payment", "ORD-A")))
    assert paid.status == 200
    payment = rig.engine.get("pay-a")
    assert (payment.state, payment.tx_id) == ("paid", tx_id)
    assert events(rig, payment.id)[-1] == ("confirm_payment", SI)
    assert_settled_only_by_inquiry(rig, payment.id)


def test_a_link_notification_without_a_mandate_waits_for_an_operator_not_the_callback(
    rig: ServiceRig, handler: NotificationHandler
) -> None:
    link = rig.service.start_link(link_order()).instance
    assert handler.handle_notification(form(link_notification("LNK-1", mandateID=""))).status == 200
    assert rig.engine.get(link.id).state == "mandate_missing"

    returned = {"referenceNo": "LNK-1", "resultCd": "0000", "mandateID": MANDATE}
    reply = handler.handle_callback(query(returned))

    assert (reply.status, shown_outcome(reply.html)) == (200, "pending")
    assert rig.engine.get(link.id).state == "mandate_missing"
    assert rig.engine.get(link.id).mandate is None
    (hint,) = rig.engine.rejections(link.id)
    assert (hint.reason, hint.payload["mandateID"]) == (RejectReason.HINT, MANDATE)
    rig.service.attach_mandate(link.id, MANDATE, by="ops", reason="confirmed with AstraPay")
    assert rig.engine.get(link.id).mandate == MANDATE
    assert events(rig, link.id) == [
        ("confirm_link_without_mandate", NN),
        ("attach_mandate", Actor.OPERATOR),
    ]


def test_a_link_notification_reporting_failure_fails_the_link(
    rig: ServiceRig, handler: NotificationHandler
) -> None:
    link = rig.service.start_link(link_order()).instance
    reply = handler.handle_notification(form(link_notification("LNK-1", status="1", mandateID="")))
    assert reply.status == 200
    failed = rig.engine.get(link.id)
    assert (failed.state, failed.mandate) == ("link_failed", None)
    assert events(rig, link.id) == [("fail_link", NN)]


def test_a_forged_link_notification_is_401_and_links_nothing(
    rig: ServiceRig, handler: NotificationHandler
) -> None:
    link = rig.service.start_link(link_order()).instance
    forged = link_notification("LNK-1", merchantToken=sha(IMID, "LNK-1", PHONE, "guess"))
    other_phone = link_notification("LNK-1", billingPhone="08999999999")

    for params in (forged, other_phone):
        assert handler.handle_notification(form(params)).status == 401

    assert_unchanged(rig, link)
    assert rig.engine.get(link.id).mandate is None
    assert [r.reason for r in rig.engine.rejections(link.id)] == [RejectReason.UNVERIFIED]


# --- the ASGI app over real HTTP on loopback --------------------------------------------------


@dataclass
class Served:
    app: NotificationApp
    http: httpx.Client


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[NotificationApp, str]]:
    app = NotificationApp()
    with serve_app(app) as url:
        yield app, url


@pytest.fixture
def served(server: tuple[NotificationApp, str]) -> Iterator[Served]:
    app, url = server
    with httpx.Client(base_url=url, timeout=httpx.Timeout(10.0)) as http:
        yield Served(app, http)
    app.handler = None


def test_over_http_a_notification_is_acknowledged_and_settled(
    rig: ServiceRig, served: Served
) -> None:
    served.app.handler = WorkedHandler(rig.service)
    payment = registered(rig)
    rig.sim.approve(payment.tx_id or "")
    body = urlencode(notification(payment))

    response = served.http.post(
        NOTIFICATION_PATH,
        content=body,
        headers={"content-type": FORM, "user-agent": "Jakarta Commons-HttpClient/3.1"},
    )

    assert (response.status_code, response.json()) == (200, OK)
    assert response.headers["content-type"].startswith("application/json")
    assert rig.engine.get(payment.id).state == "paid"
    received = rig.engine.history(payment.id)[payment.version]
    assert (received.event, received.actor) == ("receive_notification", NN)
    assert received.payload["merchantToken"] == "[redacted]"
    assert_settled_only_by_inquiry(rig, payment.id)


def test_over_http_refusals_keep_their_status(rig: ServiceRig, served: Served) -> None:
    served.app.handler = WorkedHandler(rig.service)
    payment = registered(rig)
    forged = notification(payment, merchantToken="0" * 64)

    assert served.http.post(NOTIFICATION_PATH, data=forged).status_code == 401
    assert (
        served.http.post(
            NOTIFICATION_PATH, content=b"%%%", headers={"content-type": FORM}
        ).status_code
        == 400
    )
    oversized = b"x" * (MAX_BODY_BYTES + 1)
    too_large = served.http.post(
        NOTIFICATION_PATH, content=oversized, headers={"content-type": FORM}
    )
    assert (too_large.status_code, too_large.json()["error"]) == (413, "BodyTooLarge")
    assert_unchanged(rig, payment)
    newest = rig.service.inbound.latest(limit=1)[0]
    assert (newest.status_code, newest.error, newest.outcome) == (413, "BodyTooLarge", "refused")


def test_over_http_the_allowlist_refuses_loopback(rig: ServiceRig, served: Served) -> None:
    served.app.handler = WorkedHandler(rig.service, allowed_sources=["103.20.51.0/24"])
    payment = registered(rig)
    response = served.http.post(NOTIFICATION_PATH, data=notification(payment))
    assert response.status_code == 403
    assert_unchanged(rig, payment)


def test_over_http_a_callback_by_get_only_triggers_an_inquiry(
    rig: ServiceRig, served: Served
) -> None:
    served.app.handler = WorkedHandler(rig.service)
    payment = registered(rig)
    open_page(rig, payment)  # NICEPAY: unpaid

    response = served.http.get(CALLBACK_PATH, params=callback(payment))

    assert response.status_code == 200
    assert shown_outcome(response.text) == "pending"
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert events(rig, payment.id)[-2:] == [("return_from_partner", BC), ("report_pending", SI)]
    posted = served.http.post(
        CALLBACK_PATH, data=callback(payment, tXid=new_tx_id(), referenceNo="X")
    )
    assert posted.status_code == 404


def test_over_http_routing_health_methods_and_readiness(rig: ServiceRig, served: Served) -> None:
    assert served.http.get(HEALTH_PATH).json() == {"status": "ok"}
    assert served.http.post(NOTIFICATION_PATH, data={"tXid": "x"}).status_code == 503

    served.app.handler = WorkedHandler(rig.service)
    assert served.http.get(HEALTH_PATH).status_code == 200
    assert served.http.get(NOTIFICATION_PATH).status_code == 405
    assert served.http.put(CALLBACK_PATH).status_code == 405
    assert served.http.post("/nicepay/notify").status_code == 404
    assert served.http.get("/").status_code == 404
