"""Hostile and broken requests to the notification and callback endpoints.

Each is answered with its 4xx and a typed error (``{"error": <class name>, "message": ...}``),
changes nothing, and is appended to ``inbound_attempt`` without the token or the merchant key;
accepted and duplicate requests are recorded there too. Last, a few hundred hostile requests over
real HTTP leave the server answering a valid notification. Tokens are computed with hashlib.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from sqlalchemy import select

from adapters.inbound.asgi import CALLBACK_PATH, HEALTH_PATH, NOTIFICATION_PATH, NotificationApp
from adapters.inbound.handler import NotificationHandler
from adapters.inbound.journal import InboundAttempt, InboundJournal
from adapters.inbound.parsing import MAX_BODY_BYTES, InboundRequest
from adapters.simulator import serve_app
from fsm.definition import Actor
from fsm.errors import InvalidInstanceData, RejectReason
from fsm.model import Instance
from fsm.store.sql import SqlStore
from tests.adapters.mock_nicepay import ServiceRig
from tests.adapters.mock_nicepay import (
    inquiries_sent as inquiries,
)
from tests.adapters.mock_nicepay import (
    logged_events as events,
)
from tests.adapters.values import (
    AMOUNT,
    FORM,
    IMID,
    KEY_TEXT,
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
from tests.conftest import SCHEMA_TABLES, database

JSON = "application/json"
OK = {"resultCd": "0000", "resultMsg": "SUCCESS"}
PHONE = "08123456789"
NN, BC, SI = Actor.PROVIDER_NOTIFICATION, Actor.BROWSER_CALLBACK, Actor.STATUS_INQUIRY


def registered(rig: ServiceRig, tag: str = "1") -> Instance:
    """A DANA payment of 12000 registered at NICEPAY (inquiry status 9)."""
    order = payment_order("dana", f"ORD-{tag}")
    return rig.service.start_payment(order, payment_id=f"pay-{tag}").instance


def token_for(tx_id: str, amount: str = AMOUNT) -> str:
    return sha(IMID, tx_id, amount, KEY_TEXT)


def raw(body: bytes | str, content_type: str = FORM, **extra: Any) -> InboundRequest:
    data = body.encode() if isinstance(body, str) else body
    return InboundRequest(body=data, content_type=content_type, **extra)


def snapshot(rig: ServiceRig, instance: Instance) -> tuple[str, int, int]:
    current = rig.engine.get(instance.id)
    return current.state, current.version, len(rig.engine.history(instance.id))


def latest(rig: ServiceRig) -> InboundAttempt:
    (attempt,) = rig.service.inbound.latest(limit=1)
    return attempt


def assert_no_secret(*values: Any) -> None:
    text = json.dumps(values, default=repr)
    assert KEY_TEXT not in text
    assert "[redacted]" in text or "merchantToken" not in text


# --- every hostile case: its status, its typed error, nothing changed, the attempt recorded ----


@dataclass(frozen=True)
class Case:
    request: Callable[[Instance], InboundRequest]
    status: int
    error: str
    mentions: str = ""
    matched: bool = False  # the attempt names the payment (it was found before the refusal)


def _json(payment: Instance, **changes: Any) -> InboundRequest:
    return raw(json.dumps({**notification(payment), **changes}), JSON)


CASES: dict[str, Case] = {
    "empty body": Case(lambda p: raw(b""), 400, "MissingFields", "tXid, referenceNo"),
    "form garbage": Case(lambda p: raw(b"%%%&&=="), 400, "NotificationPayloadError", "form"),
    "form without equals": Case(lambda p: raw(b"tXid"), 400, "NotificationPayloadError"),
    "not utf-8": Case(lambda p: raw(b"tXid=\xff\xfe"), 400, "NotificationPayloadError", "UTF-8"),
    "truncated json": Case(
        lambda p: raw(json.dumps(notification(p))[:-7], JSON), 400, "NotificationPayloadError"
    ),
    "json array": Case(lambda p: raw(b"[1, 2]", JSON), 400, "NotificationPayloadError", "object"),
    "json string": Case(lambda p: raw(b'"tXid"', JSON), 400, "NotificationPayloadError"),
    "json nested deep": Case(
        lambda p: raw("[" * 3000 + "]" * 3000, JSON), 400, "NotificationPayloadError"
    ),
    "amt as float": Case(lambda p: _json(p, amt=12000.0), 400, "NotificationPayloadError", "12000"),
    "amt as object": Case(
        lambda p: _json(p, amt={"value": AMOUNT}), 400, "NotificationPayloadError", "'amt'"
    ),
    "tXid as array": Case(
        lambda p: _json(p, tXid=[p.tx_id]), 400, "NotificationPayloadError", "'tXid'"
    ),
    "status as boolean": Case(
        lambda p: _json(p, status=True), 400, "NotificationPayloadError", "'status'"
    ),
    "amt as NaN": Case(
        lambda p: raw(json.dumps(notification(p)).replace('"12000"', "NaN"), JSON),
        400,
        "NotificationPayloadError",
    ),
    "repeated field": Case(
        lambda p: raw(urlencode(notification(p)) + "&tXid=x"), 400, "NotificationPayloadError"
    ),
    "no tXid": Case(lambda p: form(notification(p, tXid=None)), 400, "MissingFields", "tXid"),
    "empty tXid": Case(lambda p: form(notification(p, tXid="")), 400, "MissingFields", "tXid"),
    "no referenceNo": Case(
        lambda p: form(notification(p, referenceNo=None)), 400, "MissingFields", "referenceNo"
    ),
    "no token": Case(
        lambda p: form(notification(p, merchantToken=None)),
        401,
        "NotificationSignatureError",
        matched=True,
    ),
    "wrong token": Case(
        lambda p: form(notification(p, merchantToken=sha(IMID, p.tx_id or "", AMOUNT, "guess"))),
        401,
        "NotificationSignatureError",
        matched=True,
    ),
    "token of the stored amount, other amt": Case(
        lambda p: form(notification(p, amt="1200")), 401, "NotificationSignatureError", "", True
    ),
    "other amount with its own token": Case(
        lambda p: form(notification(p, amt="1200", merchantToken=token_for(p.tx_id or "", "1200"))),
        400,
        "NotificationPayloadError",
        "amount",
        True,
    ),
    "another merchant": Case(
        lambda p: form(notification(p, iMid="OTHERMID01")),
        400,
        "NotificationPayloadError",
        "iMid",
        True,
    ),
    "another reference": Case(
        lambda p: form(notification(p, referenceNo="ORD-2")),
        400,
        "NotificationPayloadError",
        "referenceNo",
        True,
    ),
    "unknown tXid": Case(
        lambda p: form(notification(p, tXid="IONPAYTEST05209901010000000001")),
        404,
        "UnknownTransaction",
        "IONPAYTEST05209901010000000001",
    ),
    "huge unknown tXid": Case(
        lambda p: form(notification(p, tXid="9" * 5000)), 404, "UnknownTransaction", "5000"
    ),
    "NUL in tXid": Case(
        lambda p: form(notification(p, tXid=(p.tx_id or "") + "\x00")),
        400,
        "NotificationPayloadError",
        "NUL",
    ),
    "lone surrogate in the query": Case(
        lambda p: InboundRequest(query="tXid=\ud800&referenceNo=x"),
        400,
        "NotificationPayloadError",
        "text",
    ),
    "oversized body": Case(
        lambda p: form(notification(p, goodsNm="x" * MAX_BODY_BYTES)), 413, "BodyTooLarge"
    ),
    "oversized query": Case(
        lambda p: InboundRequest(query="goodsNm=" + "x" * MAX_BODY_BYTES), 413, "BodyTooLarge"
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_hostile_notification_gets_its_4xx_changes_nothing_and_is_recorded(
    rig: ServiceRig, handler: NotificationHandler, name: str
) -> None:
    payment = registered(rig)
    registered(rig, tag="2")
    case = CASES[name]
    request = case.request(payment)
    before = snapshot(rig, payment)

    reply = handler.handle_notification(request)

    assert (reply.status, reply.body["error"]) == (case.status, case.error), reply.body
    assert set(reply.body) == {"error", "message"}
    assert case.mentions in reply.body["message"]
    assert len(reply.body["message"]) < 400  # a long input is cut, not echoed whole
    assert snapshot(rig, payment) == before
    assert inquiries(rig) == 0

    attempt = latest(rig)
    assert (attempt.endpoint, attempt.outcome, attempt.status_code, attempt.error) == (
        "notification",
        "refused",
        case.status,
        case.error,
    )
    assert attempt.reason == reply.body["message"]
    assert attempt.received_at == rig.clock.now()
    assert attempt.body_bytes == len(request.body)
    assert attempt.instance_id == (payment.id if case.matched else None)
    refused = rig.engine.rejections(payment.id)
    assert [r.reason for r in refused] == [RejectReason.UNVERIFIED] * case.matched
    if case.status == 413:
        assert attempt.parameters == {}  # an oversized body: its size only
    assert attempt.parameters.get("merchantToken") in (None, "[redacted]")
    stored = json.dumps([attempt.parameters, attempt.reason, [r.payload for r in refused]])
    assert KEY_TEXT not in stored
    assert token_for(payment.tx_id or "") not in stored


def test_a_hostile_callback_gets_its_4xx_and_is_recorded(
    rig: ServiceRig, handler: NotificationHandler
) -> None:
    payment = registered(rig)
    before = snapshot(rig, payment)
    cases = [
        (InboundRequest(query="resultCd=0000"), 400, "MissingFields"),
        (InboundRequest(query="tXid=X&referenceNo=ORD-404"), 404, "UnknownTransaction"),
        (InboundRequest(query=f"tXid={payment.tx_id}&referenceNo=ORD-9"), 400, None),
        (raw(b"\xff", FORM), 400, "NotificationPayloadError"),
        (raw(b"x" * (MAX_BODY_BYTES + 1)), 413, "BodyTooLarge"),
        (InboundRequest(query="tXid=%00"), 400, "NotificationPayloadError"),
    ]
    for request, status, error in cases:
        reply = handler.handle_callback(request)
        assert reply.status == status, reply.body
        assert reply.body["error"] == (error or "NotificationPayloadError")
        assert latest(rig).endpoint == "callback"
        assert (latest(rig).outcome, latest(rig).status_code) == ("refused", status)
    assert snapshot(rig, payment) == before
    assert inquiries(rig) == 0
    assert len(rig.service.inbound.latest()) == len(cases)


def test_extra_fields_are_ignored_for_the_decision_but_stored(
    rig: ServiceRig, handler: NotificationHandler
) -> None:
    payment = registered(rig)
    rig.sim.approve(payment.tx_id or "")
    extra = {"promoCode": "HEMAT10", "vendorRef": "v-1", "nested": '{"a": 1}'}

    reply = handler.handle_notification(form({**notification(payment), **extra}))

    assert (reply.status, reply.body) == (200, OK)
    assert rig.engine.get(payment.id).state == "paid"
    received = rig.engine.history(payment.id)[payment.version]
    assert {name: received.payload[name] for name in extra} == extra
    attempt = latest(rig)
    assert (attempt.outcome, attempt.status_code, attempt.error) == ("accepted", 200, None)
    assert (attempt.instance_id, attempt.parameters["promoCode"]) == (payment.id, "HEMAT10")
    assert attempt.parameters["merchantToken"] == "[redacted]"


def test_a_merchant_key_or_token_sent_in_any_field_is_never_stored_or_echoed(
    rig: ServiceRig, handler: NotificationHandler
) -> None:
    payment = registered(rig)
    link = rig.service.start_link(link_order()).instance
    token = token_for(payment.tx_id or "")
    leaky = notification(payment, goodsNm=f"key={KEY_TEXT}", echo=token)
    link_leak = {
        "referenceNo": "LNK-1",
        "billingPhone": PHONE,
        "iMid": IMID,
        "status": "0",
        "note": KEY_TEXT,
        "merchantToken": sha(IMID, "LNK-1", PHONE, KEY_TEXT),
    }
    replies = [
        handler.handle_notification(form({**leaky, "tXid": KEY_TEXT})),
        handler.handle_notification(form(leaky)),
        handler.handle_notification(form(link_leak)),
        handler.handle_callback(InboundRequest(query=urlencode({**leaky, "resultCd": KEY_TEXT}))),
        handler.handle_callback(
            InboundRequest(query=urlencode({"referenceNo": "LNK-1", "tXid": KEY_TEXT}))
        ),
    ]

    assert [reply.status for reply in replies] == [404, 200, 200, 200, 200]
    with database(rig.engine).engine.connect() as conn:
        rows = [row._asdict() for table in SCHEMA_TABLES for row in conn.execute(select(table))]
    stored = json.dumps([rows, [reply.body for reply in replies]], default=str)
    assert KEY_TEXT not in stored
    assert token not in stored
    assert rig.engine.get(link.id).state == "mandate_missing"


# --- the notification's status is never what decides a payment -----------------------------------


@pytest.mark.parametrize("status", ["0", "1", "7", "", "paid", "99999", None])
def test_any_notification_status_leads_to_an_inquiry_that_alone_decides(
    rig: ServiceRig, handler: NotificationHandler, status: str | None
) -> None:
    payment = registered(rig)
    tx_id = payment.tx_id or ""

    first = handler.handle_notification(form(notification(payment, status=status)))

    assert (first.status, first.body) == (200, OK)  # accepted: the token does not cover status
    assert rig.engine.get(payment.id).state == "payment_pending"  # NICEPAY still says 9
    assert events(rig, payment.id)[payment.version :] == [
        ("receive_notification", NN),
        ("check_status", Actor.MERCHANT),
        ("report_pending", SI),
    ]

    rig.sim.approve(tx_id)  # paid at NICEPAY, whatever the next notification says
    # The same notification with other unsigned fields is a redelivery: nothing new, no inquiry.
    again = notification(payment, status=status, transTm="003612", junk="x")
    assert handler.handle_notification(form(again)).status == 200
    assert (rig.engine.get(payment.id).state, inquiries(rig)) == ("payment_pending", 1)
    # One that claims the other documented status is a new event; its inquiry finds it paid.
    other = "1" if status == "0" else "0"
    assert handler.handle_notification(form(notification(payment, status=other))).status == 200
    assert rig.engine.get(payment.id).state == "paid"
    assert events(rig, payment.id)[-1] == ("confirm_payment", SI)
    outcomes = [a.outcome for a in rig.service.inbound.latest()]
    assert outcomes == ["accepted", "duplicate", "accepted"]


@pytest.mark.parametrize("status", ["7", "", "linked"])
def test_a_link_notification_with_an_unknown_status_is_refused_and_moves_nothing(
    rig: ServiceRig, handler: NotificationHandler, status: str
) -> None:
    link = rig.service.start_link(link_order()).instance
    params = {
        "referenceNo": "LNK-1",
        "billingPhone": PHONE,
        "iMid": IMID,
        "status": status,
        "mandateID": "7700123456789",
        "merchantToken": sha(IMID, "LNK-1", PHONE, KEY_TEXT),
    }

    reply = handler.handle_notification(form(params))

    assert (reply.status, reply.body["error"]) == (400, "UnknownNotificationStatus")
    assert (rig.engine.get(link.id).state, rig.engine.get(link.id).mandate) == (link.state, None)
    assert [r.reason for r in rig.engine.rejections(link.id)] == [RejectReason.UNVERIFIED]
    assert (latest(rig).error, latest(rig).instance_id) == ("UnknownNotificationStatus", link.id)

    assert handler.handle_notification(form({**params, "status": "0"})).status == 200
    assert rig.engine.get(link.id).state == "linked"


# --- a replayed old notification ------------------------------------------------------------------


def test_an_old_notification_replayed_after_settlement_is_200_and_changes_nothing(
    rig: ServiceRig, handler: NotificationHandler
) -> None:
    payment = registered(rig)
    rig.sim.approve(payment.tx_id or "")
    body = form(notification(payment))
    assert handler.handle_notification(body).status == 200
    paid = rig.engine.get(payment.id)
    assert paid.state == "paid"

    rig.clock.advance(timedelta(days=40))
    replayed = handler.handle_notification(body)

    assert (replayed.status, replayed.body) == (200, OK)
    assert snapshot(rig, paid) == (paid.state, paid.version, paid.version)
    duplicate = rig.engine.rejections(payment.id)[-1]
    assert (duplicate.event, duplicate.reason) == ("receive_notification", RejectReason.DUPLICATE)
    assert inquiries(rig) == 1  # a redelivery's inquiry already ran
    attempt = latest(rig)
    assert (attempt.outcome, attempt.status_code, attempt.instance_id) == (
        "duplicate",
        200,
        payment.id,
    )
    assert attempt.received_at == rig.clock.now()

    # The token does not cover status: a replay claiming a reversal is acknowledged, refused by
    # the settled flow, and only NICEPAY's answer (still paid) could move the payment.
    reversal = handler.handle_notification(form(notification(payment, status="1")))
    assert reversal.status == 200
    assert snapshot(rig, paid) == (paid.state, paid.version, paid.version)
    stale = [r for r in rig.engine.rejections(payment.id) if r.reason == RejectReason.STALE]
    assert [r.event for r in stale] == ["receive_notification"]
    assert latest(rig).outcome == "not_applied"


def test_a_callback_replay_is_recorded_as_duplicate(
    rig: ServiceRig, handler: NotificationHandler
) -> None:
    payment = registered(rig)
    back = InboundRequest(query=urlencode({"tXid": payment.tx_id, "resultCd": "0000"}))
    assert handler.handle_callback(back).status == 200
    assert handler.handle_callback(back).status == 200
    outcomes = [(a.endpoint, a.outcome) for a in rig.service.inbound.latest()]
    assert outcomes == [("callback", "duplicate"), ("callback", "accepted")]


def test_a_callback_is_stored_compactly_its_documented_fields_first(
    rig: ServiceRig, handler: NotificationHandler
) -> None:
    payment = registered(rig)
    # Control characters take six bytes each as JSON: 15000 of them exceed any stored payload.
    huge = f"tXid={payment.tx_id}&resultCd={'9' * 300}&junk={chr(1) * 15_000}"
    first = handler.handle_callback(InboundRequest(query=huge))
    again = handler.handle_callback(InboundRequest(query=huge))

    assert (first.status, again.status) == (200, 200)
    assert [a.outcome for a in rig.service.inbound.latest()] == ["duplicate", "accepted"]
    returned = rig.engine.history(payment.id)[payment.version]
    assert returned.event == "return_from_partner"
    assert returned.payload["tXid"] == payment.tx_id
    assert returned.payload["resultCd"] == f"{'9' * 255}... (300 characters)"
    assert returned.payload["junk"].endswith("... (15000 characters)")
    for attempt in rig.service.inbound.latest():
        assert len(json.dumps(attempt.parameters)) <= 4096
        assert attempt.parameters["tXid"] == payment.tx_id


# --- the inbound journal's table -----------------------------------------------------------------
# --- the inbound journal's table ----------------------------------------------------------------


def test_the_journal_records_any_text_redacts_secrets_and_lists_newest_first(
    store: SqlStore,
) -> None:
    inbound = InboundJournal(store)
    moment = datetime(2025, 2, 1, tzinfo=UTC)
    with pytest.raises(InvalidInstanceData):
        inbound.record(
            received_at=datetime(2025, 2, 1), endpoint="notification", outcome="x", status_code=1
        )
    inbound.record(
        received_at=moment,
        endpoint="notification",
        outcome="refused",
        status_code=400,
        error="E" * 100,
        reason="NUL \x00 and a lone \ud800",
        instance_id=None,
        parameters={"merchantToken": "t" * 64, "merchantKey": KEY_TEXT, "tXid": "a\x00b"},
        body_bytes=12,
        client_ip="203.0.113.7",
    )
    inbound.record(
        received_at=moment + timedelta(seconds=1),
        endpoint="callback",
        outcome="accepted",
        status_code=200,
        instance_id="pay-1",
        parameters={"junk": "x" * 70_000},
    )

    newest, oldest = inbound.latest()
    assert (newest.endpoint, newest.instance_id, newest.received_at) == (
        "callback",
        "pay-1",
        moment + timedelta(seconds=1),
    )
    assert list(newest.parameters) == ["unstored_parameters"]
    assert oldest.parameters == {
        "merchantToken": "[redacted]",
        "merchantKey": "[redacted]",
        "tXid": "a\x00b",
    }
    assert oldest.reason == "NUL \\x00 and a lone \\ud800"
    assert (oldest.error, oldest.body_bytes, oldest.client_ip) == ("E" * 64, 12, "203.0.113.7")
    assert inbound.latest(limit=1) == [newest]
    assert inbound.latest(instance_id="pay-1") == [newest]


# --- over real HTTP: hundreds of hostile requests, and the server still serves --------------------


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[NotificationApp, str]]:
    app = NotificationApp()
    with serve_app(app) as url:
        yield app, url


def _send_raw(url: str, data: bytes) -> bytes:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=5) as sock:
        sock.sendall(data)
        try:
            return sock.recv(4096)
        except OSError:  # a timeout or a reset: the server hung up on it
            return b""


def hostile_requests(payment: Instance) -> list[tuple[str, str, dict[str, Any], int]]:
    """``(method, path, httpx arguments, expected status)`` for one round of hostile requests."""
    tx_id = payment.tx_id or ""
    valid = notification(payment)
    return [
        ("POST", NOTIFICATION_PATH, {"content": b"%%%", "headers": {"content-type": FORM}}, 400),
        (
            "POST",
            NOTIFICATION_PATH,
            {"content": b'{"tXid":', "headers": {"content-type": JSON}},
            400,
        ),
        ("POST", NOTIFICATION_PATH, {"json": [valid]}, 400),
        ("POST", NOTIFICATION_PATH, {"json": {**valid, "amt": 12000.5}}, 400),
        ("POST", NOTIFICATION_PATH, {"json": {**valid, "status": False}}, 400),
        (
            "POST",
            NOTIFICATION_PATH,
            {"content": b"\xff\xfe\x00", "headers": {"content-type": FORM}},
            400,
        ),
        ("POST", NOTIFICATION_PATH, {"data": {"referenceNo": "ORD-1"}}, 400),
        ("POST", NOTIFICATION_PATH, {"data": {**valid, "merchantToken": "0" * 64}}, 401),
        (
            "POST",
            NOTIFICATION_PATH,
            {"data": {k: v for k, v in valid.items() if k != "merchantToken"}},
            401,
        ),
        ("POST", NOTIFICATION_PATH, {"data": {**valid, "amt": "99999"}}, 401),
        ("POST", NOTIFICATION_PATH, {"data": {**valid, "tXid": new_tx_id()}}, 404),
        ("POST", NOTIFICATION_PATH, {"data": {**valid, "tXid": tx_id + "\x00"}}, 400),
        ("POST", NOTIFICATION_PATH, {"content": b"x" * (MAX_BODY_BYTES + 1)}, 413),
        (
            "POST",
            NOTIFICATION_PATH,
            {"content": b"a=1", "headers": {"content-type": "multipart/form-data; boundary=x"}},
            400,
        ),
        ("GET", NOTIFICATION_PATH, {"params": valid}, 405),
        ("GET", CALLBACK_PATH, {"params": {"resultCd": "0000"}}, 400),
        ("GET", CALLBACK_PATH, {"params": {"tXid": new_tx_id(), "referenceNo": "X"}}, 404),
        ("POST", CALLBACK_PATH, {"content": b"[]", "headers": {"content-type": JSON}}, 400),
        ("POST", NOTIFICATION_PATH + "/", {"data": valid}, 404),
    ]


ROUNDS, CLIENTS = 16, 4


def test_over_http_hundreds_of_hostile_requests_leave_the_server_serving(
    rig: ServiceRig, server: tuple[NotificationApp, str]
) -> None:
    app, url = server
    app.handler = WorkedHandler(rig.service)
    payment = registered(rig)
    before = snapshot(rig, payment)

    def round_of_hostile_requests() -> list[int]:
        with httpx.Client(base_url=url, timeout=httpx.Timeout(10.0)) as http:
            statuses = []
            for method, path, arguments, expected in hostile_requests(payment):
                response = http.request(method, path, **arguments)
                assert response.status_code == expected, (path, arguments, response.text)
                assert "error" in response.json()
                statuses.append(expected)
            return statuses

    try:
        with ThreadPoolExecutor(CLIENTS) as pool:  # 304 requests, four clients at a time
            rounds = [pool.submit(round_of_hostile_requests) for _ in range(ROUNDS)]
            statuses = [status for done in rounds for status in done.result()]
        for garbage in (
            b"\x00\x01\x02\r\n\r\n",
            b"POST / HTTP/9.9\r\n\r\n",
            b"GET " + b"/" * 70_000,
        ):
            _send_raw(url, garbage)  # the server answers 400 or hangs up; it does not stop
        assert snapshot(rig, payment) == before
        assert inquiries(rig) == 0

        rig.sim.approve(payment.tx_id or "")
        with httpx.Client(base_url=url, timeout=httpx.Timeout(10.0)) as http:
            served = http.post(NOTIFICATION_PATH, data=notification(payment))
            assert (served.status_code, served.json()) == (200, OK)
            assert http.get(HEALTH_PATH).json() == {"status": "ok"}
    finally:
        app.handler = None

    assert rig.engine.get(payment.id).state == "paid"
    assert len(statuses) == ROUNDS * len(hostile_requests(payment)) > 250
    assert set(statuses) == {400, 401, 404, 405, 413}
    attempts = rig.service.inbound.latest(limit=1000)
    assert attempts[0].outcome == "accepted"
    refused = [a for a in attempts if a.outcome == "refused"]
    # Every hostile request the handler saw is recorded, and so is each body the app would not
    # read past its limit; only wrong routes and methods are refused before any handler runs.
    assert len(refused) == ROUNDS * 17
    assert KEY_TEXT not in json.dumps([vars(a) for a in attempts], default=str)
