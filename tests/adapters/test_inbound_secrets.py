"""No token is stored or logged, whatever fails; unauthenticated requests are kept compactly.

Every way a request can fail is played over real HTTP against a payment whose genuine T3 token
(computed here with hashlib) the request carries, in the body, the query string or another
field; then every column of every table and every captured log record is searched for the
token, in either case, and for the merchant key. A token in the query string is refused with
its own error. ``ewallet-fsm serve`` logs no request line, so no query string either. The
inbound journal keeps each unauthenticated request to a bounded size, for a retention that
``ewallet-fsm prune-inbound`` enforces.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from adapters.inbound.asgi import CALLBACK_PATH, NOTIFICATION_PATH, NotificationApp
from adapters.inbound.handler import NotificationHandler
from adapters.inbound.journal import InboundJournal
from adapters.inbound.parsing import MAX_BODY_BYTES
from adapters.simulator import serve_app
from fsm.errors import InvalidInstanceData
from fsm.model import Instance
from fsm.store.sql import SqlStore
from tests.adapters.inbound_rig import (
    leaked,
    logged,
    run_cli,
    send_partial,
    serving,
    stored_rows,
)
from tests.adapters.mock_nicepay import ServiceRig
from tests.adapters.values import AMOUNT, FORM, IMID, KEY_TEXT, payment_order, sha
from tests.adapters.values import signed_notification as notification
from tests.conftest import database

JSON = "application/json"
STALL = 0.5


@dataclass
class Site:
    rig: ServiceRig
    http: httpx.Client
    url: str


@pytest.fixture
def site(rig: ServiceRig) -> Iterator[Site]:
    app = NotificationApp(NotificationHandler(rig.service), body_timeout=STALL)
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=10.0) as http:
        yield Site(rig, http, url)


def registered(rig: ServiceRig) -> Instance:
    return rig.service.start_payment(payment_order("dana", "ORD-S"), payment_id="pay-s").instance


def server_side(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    """The records our server wrote: not the test's HTTP client's, nor uvicorn's request lines.

    The access log is off (``serve`` is tested for it below); pytest reattaches a handler to
    every logger that does not propagate, which turns it back on inside the test process.
    """
    others = ("httpx", "httpcore", "uvicorn.access")
    return [record for record in records if not record.name.startswith(others)]


def failures(payment: Instance, token: str) -> dict[str, tuple[dict[str, Any], int, str]]:
    """Each failure mode: httpx arguments for a notification, its status and error."""
    genuine = notification(payment)
    body = urlencode(genuine)
    return {
        "json labelled as a form": (
            {"content": json.dumps(genuine), "headers": {"content-type": FORM}},
            400,
            "NotificationPayloadError",
        ),
        "a repeated field": (
            {"content": body + "&status=1", "headers": {"content-type": FORM}},
            400,
            "NotificationPayloadError",
        ),
        "a field without '='": (
            {"content": body + "&broken", "headers": {"content-type": FORM}},
            400,
            "NotificationPayloadError",
        ),
        "the whole notification in the query": ({"params": genuine}, 400, "TokenInQuery"),
        "the token alone in the query": (
            {"params": {"merchantToken": token}, "data": {**genuine, "merchantToken": ""}},
            400,
            "TokenInQuery",
        ),
        "another amount": ({"data": {**genuine, "amt": "1"}}, 401, "NotificationSignatureError"),
        "the token as the tXid": (
            {"data": {**genuine, "tXid": token + "00"}},
            404,
            "UnknownTransaction",
        ),
        "the token in a field of a forgery": (
            {"data": {**genuine, "merchantToken": "0" * 64, "goodsNm": token}},
            401,
            "NotificationSignatureError",
        ),
        "a NUL beside it": (
            {"data": {**genuine, "billingNm": "\x00" + token}},
            400,
            "NotificationPayloadError",
        ),
        "a fraction in JSON": (
            {"content": json.dumps(genuine).replace(f'"{AMOUNT}"', "12000.5"), "headers": {}},
            400,
            "NotificationPayloadError",
        ),
        "an oversized body": (
            {"data": {**genuine, "pad": "x" * MAX_BODY_BYTES}},
            413,
            "BodyTooLarge",
        ),
    }


def test_no_token_is_stored_or_logged_whatever_fails(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    payment = registered(site.rig)
    token = sha(IMID, payment.tx_id or "", AMOUNT, KEY_TEXT)
    for name, (arguments, status, error) in failures(payment, token).items():
        reply = site.http.post(NOTIFICATION_PATH, **arguments)
        assert (reply.status_code, reply.json()["error"]) == (status, error), name
        assert not leaked(reply.text, [token, KEY_TEXT]), name
    answer = send_partial(site.url, NOTIFICATION_PATH, urlencode(notification(payment)).encode())
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"BodyTimeout" in answer
    back = site.http.get(CALLBACK_PATH, params={**notification(payment), "echo": token})
    assert back.status_code == 200

    attempts = site.rig.service.inbound.latest(limit=100)
    assert len(attempts) == len(failures(payment, token)) + 2
    in_query = [a for a in attempts if a.error == "TokenInQuery"]
    assert [a.parameters["merchantToken"] for a in in_query] == ["[redacted]"] * 2
    assert not leaked(stored_rows(database(site.rig.engine)), [token, KEY_TEXT])
    assert not leaked(logged(server_side(caplog.records)), [token, KEY_TEXT])
    assert len(caplog.records) > len(attempts)  # refusals were logged, without the token


def test_an_unauthenticated_request_is_stored_in_a_bounded_size(site: Site) -> None:
    payment = registered(site.rig)
    many = {f"field{n:03d}": "v" * 60 for n in range(150)}
    forged = {**notification(payment, merchantToken="f" * 64), **many, "goodsNm": "g" * 900}
    reply = site.http.post(NOTIFICATION_PATH, data=forged)
    assert reply.status_code == 401

    (attempt,) = site.rig.service.inbound.latest(limit=1)
    stored = json.dumps(attempt.parameters)
    assert len(stored) <= 4096
    assert attempt.parameters["tXid"] == payment.tx_id  # NICEPAY's own fields come first
    assert attempt.parameters["goodsNm"].endswith("... (900 characters)")
    assert "fields of" in attempt.parameters["omitted"]
    (refusal,) = site.rig.engine.rejections(payment.id)
    assert len(json.dumps(refusal.payload)) <= 4096


def test_serve_logs_no_request_line_and_refuses_a_token_in_the_query(tmp_path: Any) -> None:
    env = {"EWALLET_FSM_IMID": IMID, "EWALLET_FSM_MERCHANT_KEY": KEY_TEXT}
    token = sha(IMID, "IONPAYTEST05202502010030009999", AMOUNT, KEY_TEXT)
    query = {"tXid": "IONPAYTEST05202502010030009999", "merchantToken": token, "mark": "Q1"}
    with serving("--db", f"sqlite:///{tmp_path / 'serve.sqlite3'}", env=env) as served:
        refused = httpx.post(served.url + NOTIFICATION_PATH, params=query, timeout=10)
        returned = httpx.get(served.url + CALLBACK_PATH, params=query, timeout=10)
    assert (refused.status_code, refused.json()["error"]) == (400, "TokenInQuery")
    assert returned.status_code == 404
    printed = "\n".join(served.output)
    assert "serving" in printed  # the command's own line; -v logs at INFO
    assert not leaked(printed, [token, KEY_TEXT, "mark=Q1", NOTIFICATION_PATH + "?"])


# --- retention -----------------------------------------------------------------------------------


def journal(store: SqlStore, *ages: timedelta) -> datetime:
    """One attempt received each of ``ages`` ago; returns now."""
    now, inbound = datetime.now(UTC), InboundJournal(store)
    for age in ages:
        inbound.record(
            received_at=now - age, endpoint="callback", outcome="refused", status_code=404
        )
    return now


def test_prune_deletes_attempts_older_than_the_cut_off(store: SqlStore) -> None:
    days = [timedelta(days=d) for d in (90, 40, 31, 29, 1, 0)]
    now, inbound = journal(store, *days), InboundJournal(store)

    assert inbound.prune(now - timedelta(days=30)) == 3
    kept = inbound.latest()
    assert sorted(now - a.received_at for a in kept) == sorted(days[3:])
    assert inbound.prune(now - timedelta(days=30)) == 0
    with pytest.raises(InvalidInstanceData):
        inbound.prune(datetime(2025, 1, 1))  # a naive time is refused


def test_the_prune_command_keeps_thirty_days_by_default(db_url: str) -> None:
    store = SqlStore(db_url)
    store.create_schema()
    journal(store, timedelta(days=45), timedelta(days=31), timedelta(days=2))
    inbound = InboundJournal(store)

    default = run_cli("prune-inbound", "--db", db_url)
    assert default.returncode == 0, default.stderr
    assert default.stdout.startswith("pruned 2 inbound requests received before ")
    assert len(inbound.latest()) == 1
    shorter = run_cli("prune-inbound", "--db", db_url, "--days", "1")
    assert (shorter.returncode, shorter.stdout.split()[:2]) == (0, ["pruned", "1"])
    assert inbound.latest() == []
    store.dispose()
