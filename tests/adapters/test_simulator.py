"""The NICEPAY simulator over loopback HTTP: checks, lifecycles, wallets, notifications, faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as wall_time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from pydantic import SecretStr

from adapters.nicepay import tokens as _tokens
from adapters.simulator import (
    USER_AGENT,
    BrowserOutcome,
    CancelRule,
    NicepaySimulator,
    ScriptedBrowser,
    SimulatorConfig,
    serve_app,
)
from adapters.simulator._ledger import flow_with_expiry
from fsm.clock import ManualClock
from fsm.flows import Wallet

IMID = "IONPAYTEST"
KEY = SecretStr(
    "33F49GnCMS1mFYlGXisbUDzVf2ATWCl9k3R++d5hDd3Frmuos/XLx8XhXpe+LDYAbpGKZYSwtlyyLOtS/8aD7A=="
)
MITRA = {"ovo": "OVOE", "dana": "DANA", "linkaja": "LINK", "shopeepay": "ESHP"}
FAST_EXPIRY = {"ovo": 0.6, "dana": 0.6, "linkaja": 0.6, "shopeepay": 0.6, "astrapay": 0.6}


# --- a merchant on loopback: records every callback and notification -----------------------------


@dataclass(frozen=True)
class Hit:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))


@dataclass
class Merchant:
    hits: list[Hit] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)
    base_url: str = ""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        hit = Hit(
            scope["method"],
            scope["path"],
            dict(parse_qsl(scope["query_string"].decode(), keep_blank_values=True)),
            {k.decode().lower(): v.decode() for k, v in scope["headers"]},
            body,
            time.monotonic(),
        )
        with self.cond:
            self.hits.append(hit)
            self.cond.notify_all()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b'{"resultCd":"0000"}'})

    def for_ref(self, ref: str) -> list[Hit]:
        with self.cond:
            return [h for h in self.hits if f"/{ref}" in h.path]

    def wait(self, ref: str, count: int, timeout: float = 5.0) -> list[Hit]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.for_ref(ref)) < count and time.monotonic() < deadline:
                self.cond.wait(deadline - time.monotonic())
        return self.for_ref(ref)

    def callback_url(self, ref: str) -> str:
        return f"{self.base_url}/callback/{ref}?shop=1"

    def notify_url(self, ref: str) -> str:
        return f"{self.base_url}/notify/{ref}"


@pytest.fixture(scope="module")
def merchant() -> Iterator[Merchant]:
    receiver = Merchant()
    with serve_app(receiver) as url:
        receiver.base_url = url
        yield receiver


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as client:
        yield client


def config(**overrides: Any) -> SimulatorConfig:
    values: dict[str, Any] = {"imid": IMID, "merchant_key": KEY, "expiry": FAST_EXPIRY}
    values.update(overrides)
    return SimulatorConfig(**values)


@pytest.fixture(scope="module")
def sim() -> Iterator[NicepaySimulator]:
    with NicepaySimulator(config()).serve() as simulator:
        yield simulator


def new_ref() -> str:
    return f"ORD-{uuid.uuid4().hex[:12]}"


def now_stamp() -> str:
    return _tokens.nicepay_timestamp(datetime.now(UTC))


# --- requests as a merchant would build them -----------------------------------------------------


def registration_body(
    merchant: Merchant, ref: str, wallet: str = "dana", amt: str = "15000", **extra: Any
) -> dict[str, Any]:
    stamp = now_stamp()
    cart = {
        "count": "2",
        "item": [
            {"goods_name": "Tea", "goods_amt": "5000", "goods_quantity": "2", "img_url": ""},
            {"goods_name": "Fee", "goods_amt": str(int(amt) - 10000), "goods_quantity": "1"},
        ],
    }
    body: dict[str, Any] = {
        "timeStamp": stamp,
        "iMid": IMID,
        "payMethod": "05",
        "currency": "IDR",
        "amt": amt,
        "referenceNo": ref,
        "goodsNm": "Tea",
        "billingNm": "Budi",
        "billingPhone": "081234567890",
        "billingEmail": "budi@example.com",
        "billingAddr": "Jl. Sudirman 1",
        "billingCity": "Jakarta",
        "billingState": "DKI",
        "billingPostCd": "10210",
        "billingCountry": "Indonesia",
        "cartData": json.dumps(cart, separators=(",", ":")),
        "mitraCd": MITRA[wallet],
        "userIP": "127.0.0.1",
        "dbProcessUrl": merchant.notify_url(ref),
        "merchantToken": _tokens.registration_token(stamp, IMID, ref, amt, KEY),
    }
    body.update(extra)
    return body


def register(
    http: httpx.Client,
    sim: NicepaySimulator,
    merchant: Merchant,
    ref: str,
    wallet: str = "dana",
    amt: str = "15000",
    **extra: Any,
) -> dict[str, Any]:
    body = registration_body(merchant, ref, wallet, amt, **extra)
    answer: dict[str, Any] = http.post(
        f"{sim.nicepay_url}/direct/v2/registration", json=body
    ).json()
    return answer


def payment_fields(
    merchant: Merchant, tx_id: str, ref: str, amt: str = "15000", **extra: str
) -> dict[str, str]:
    stamp = now_stamp()
    fields = {
        "timeStamp": stamp,
        "tXid": tx_id,
        "merchantToken": _tokens.registration_token(stamp, IMID, ref, amt, KEY),
        "callBackUrl": merchant.callback_url(ref),
    }
    fields.update(extra)
    return fields


def payment_url(sim: NicepaySimulator, fields: Mapping[str, str]) -> str:
    return f"{sim.nicepay_url}/direct/v2/payment?{urlencode(fields)}"


def inquire(
    http: httpx.Client, sim: NicepaySimulator, tx_id: str, ref: str, amt: str = "15000"
) -> dict[str, Any]:
    stamp = now_stamp()
    body = {
        "timeStamp": stamp,
        "tXid": tx_id,
        "iMid": IMID,
        "referenceNo": ref,
        "amt": amt,
        "merchantToken": _tokens.registration_token(stamp, IMID, ref, amt, KEY),
    }
    answer: dict[str, Any] = http.post(f"{sim.nicepay_url}/direct/v2/inquiry", json=body).json()
    return answer


def cancel(
    http: httpx.Client,
    sim: NicepaySimulator,
    tx_id: str,
    ref: str,
    amt: str = "15000",
    cancel_type: str = "1",
    stamp: str | None = None,
) -> dict[str, Any]:
    stamp = stamp or now_stamp()
    body = {
        "timeStamp": stamp,
        "tXid": tx_id,
        "iMid": IMID,
        "payMethod": "05",
        "cancelType": cancel_type,
        "amt": amt,
        "referenceNo": ref,
        "cancelMsg": "customer request",
        "merchantToken": _tokens.cancel_token(stamp, IMID, tx_id, amt, KEY),
    }
    answer: dict[str, Any] = http.post(f"{sim.nicepay_url}/direct/v2/cancel", json=body).json()
    return answer


def pay_with_browser(
    http: httpx.Client,
    sim: NicepaySimulator,
    merchant: Merchant,
    ref: str,
    wallet: str,
    action: str | None = None,
) -> tuple[str, Any]:
    tx_id = register(http, sim, merchant, ref, wallet)["tXid"]
    result = ScriptedBrowser(http, action=action).open(
        payment_url(sim, payment_fields(merchant, tx_id, ref))
    )
    return tx_id, result


def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


# --- registration --------------------------------------------------------------------------------


def test_registration_returns_a_30_character_txid_with_the_wib_date() -> None:
    clock = ManualClock(datetime(2026, 3, 1, 17, 30, 5, tzinfo=UTC))  # 2026-03-02 00:30:05 WIB
    receiver = Merchant(base_url="http://127.0.0.1:9")
    with (
        NicepaySimulator(config(clock=clock)).serve() as simulator,
        httpx.Client(timeout=5.0) as client,
    ):
        first = register(client, simulator, receiver, new_ref(), "dana")
        second = register(client, simulator, receiver, new_ref(), "ovo")
    assert first["resultCd"] == "0000"
    tx_id = first["tXid"]
    assert len(tx_id) == 30
    assert tx_id[:10] == IMID
    assert tx_id[10:12] == "05"
    assert tx_id[12:26] == "20260302003005"
    assert tx_id[26:].isdigit()
    assert second["tXid"][26:] != tx_id[26:]
    assert (first["transDt"], first["transTm"]) == ("20260302", "003005")
    assert first["amt"] == "15000"
    assert first["mitraCd"] == "DANA"


def _without(body: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != name}


UNDEFINED = [
    ("currency", "9013"),
    ("referenceNo", "9014"),
    ("goodsNm", "9015"),
    ("billingNm", "9016"),
    ("billingPhone", "9017"),
    ("billingEmail", "9018"),
    ("dbProcessUrl", "9020"),
    ("userIP", "9024"),
    ("billingCity", "9025"),
    ("billingState", "9026"),
    ("billingPostCd", "9027"),
    ("billingCountry", "9028"),
    ("amt", "9007"),
    ("iMid", "9011"),
    ("timeStamp", "9031"),
    ("payMethod", "9012"),
    ("merchantToken", "9010"),
    ("cartData", "9022"),
]


@pytest.mark.parametrize(("missing", "code"), UNDEFINED)
def test_a_missing_field_is_refused_with_its_code(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant, missing: str, code: str
) -> None:
    body = _without(registration_body(merchant, new_ref()), missing)
    answer = http.post(f"{sim.nicepay_url}/direct/v2/registration", json=body).json()
    assert answer["resultCd"] == code, answer


def _retoken(body: dict[str, Any]) -> dict[str, Any]:
    token = _tokens.registration_token(
        body["timeStamp"], IMID, body["referenceNo"], str(body["amt"]), KEY
    )
    return {**body, "merchantToken": token}


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"amt": "15000.00"}, "9008"),
        ({"amt": "15,000"}, "9008"),
        ({"amt": "1234567890123"}, "9008"),
        ({"iMid": "OTHERMID01"}, "9011"),
        ({"payMethod": "02"}, "9012"),
        ({"timeStamp": "2026-01-01"}, "9031"),
        ({"cartData": "{not json"}, "9022"),
        ({"cartData": '{"count":"1","item":[{"goods_amt":"abc","goods_quantity":"1"}]}'}, "9022"),
        ({"cartData": '{"count":"1","item":[{"goods_amt":"14000","goods_quantity":"1"}]}'}, "9023"),
        ({"mitraCd": "ASPY"}, "9751"),
    ],
)
def test_a_malformed_field_is_refused_with_its_code(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant, change: dict[str, str], code: str
) -> None:
    body = _retoken({**registration_body(merchant, new_ref()), **change})
    answer = http.post(f"{sim.nicepay_url}/direct/v2/registration", json=body).json()
    assert answer["resultCd"] == code, answer


def test_a_json_float_amount_is_refused_and_a_json_integer_is_hashed_as_text(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant
) -> None:
    url = f"{sim.nicepay_url}/direct/v2/registration"
    as_float = json.dumps(_retoken(registration_body(merchant, new_ref()))).replace(
        '"amt": "15000"', '"amt": 15000.0'
    )
    headers = {"content-type": "application/json"}
    assert http.post(url, content=as_float, headers=headers).json()["resultCd"] == "9008"
    as_int = json.dumps(_retoken(registration_body(merchant, new_ref()))).replace(
        '"amt": "15000"', '"amt": 15000'
    )
    assert http.post(url, content=as_int, headers=headers).json()["resultCd"] == "0000"


def test_a_wrong_token_is_9010(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant
) -> None:
    body = registration_body(merchant, new_ref())
    body["merchantToken"] = _tokens.registration_token(
        body["timeStamp"], IMID, body["referenceNo"], body["amt"], SecretStr("wrong")
    )
    answer = http.post(f"{sim.nicepay_url}/direct/v2/registration", json=body).json()
    assert answer["resultCd"] == "9010"


def test_linkaja_needs_goods_quantity(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant
) -> None:
    cart = '{"count":"1","item":[{"goods_name":"Tea","goods_amt":"15000"}]}'
    answer = register(http, sim, merchant, new_ref(), "linkaja", cartData=cart)
    assert answer["resultCd"] == "9022"
    assert register(http, sim, merchant, new_ref(), "dana", cartData=cart)["resultCd"] == "0000"


def test_a_duplicate_reference_is_9009_unless_the_check_is_off(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant
) -> None:
    ref = new_ref()
    assert register(http, sim, merchant, ref)["resultCd"] == "0000"
    assert register(http, sim, merchant, ref)["resultCd"] == "9009"
    with NicepaySimulator(config(duplicate_reference_check=False)).serve() as lenient:
        first = register(http, lenient, merchant, ref)
        second = register(http, lenient, merchant, ref)
    assert first["resultCd"] == second["resultCd"] == "0000"
    assert first["tXid"] != second["tXid"]


# --- inquiry -------------------------------------------------------------------------------------


def test_inquiry_refuses_another_amount_a_bad_token_and_an_unknown_txid(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant
) -> None:
    ref = new_ref()
    tx_id = register(http, sim, merchant, ref)["tXid"]
    assert inquire(http, sim, tx_id, ref, amt="15001")["resultCd"] == "9010"
    assert inquire(http, sim, tx_id, ref, amt="15000.00")["resultCd"] == "9008"
    assert inquire(http, sim, "IONPAYTEST0520260101000000" + "9999", ref)["resultCd"] == "9751"
    stamp = now_stamp()
    forged = {
        "timeStamp": stamp,
        "tXid": tx_id,
        "iMid": IMID,
        "referenceNo": ref,
        "amt": "15000",
        "merchantToken": _tokens.registration_token(stamp, IMID, ref, "15000", SecretStr("x")),
    }
    answer = http.post(f"{sim.nicepay_url}/direct/v2/inquiry", json=forged).json()
    assert answer["resultCd"] == "9010"
    ok = inquire(http, sim, tx_id, ref)
    assert (ok["resultCd"], ok["status"], ok["resultMsg"]) == ("0000", "9", "init")
    assert ok["amt"] == "15000"
    assert ok["transDt"] is None
    assert ok["vacctNo"] is None


def _log_in(http: httpx.Client, sim: NicepaySimulator, tx_id: str, wallet: str) -> None:
    secret = "otp" if wallet in ("dana", "linkaja") else "pin"
    form = {"tXid": tx_id, "phone": "0812", secret: "123456"}
    page = http.post(f"{sim.base_url}/partner/{wallet}/login", data=form)
    assert page.status_code == 200
    assert 'data-step="confirm"' in page.text


@pytest.mark.parametrize("wallet", ["dana", "linkaja", "shopeepay"])
def test_redirect_wallets_report_the_general_table(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant, wallet: str
) -> None:
    ref = new_ref()
    tx_id = register(http, sim, merchant, ref, wallet)["tXid"]
    assert inquire(http, sim, tx_id, ref)["status"] == "9"
    page = http.get(payment_url(sim, payment_fields(merchant, tx_id, ref)))
    assert page.status_code == 303
    assert f"/partner/{wallet}?" in page.headers["location"]
    assert inquire(http, sim, tx_id, ref)["status"] == "3"
    _log_in(http, sim, tx_id, wallet)
    assert inquire(http, sim, tx_id, ref)["status"] == "4"
    time.sleep(0.7)  # the compressed expiry window passes
    assert inquire(http, sim, tx_id, ref)["status"] == "5"


def test_a_paid_redirect_payment_moves_through_the_engine(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant
) -> None:
    ref = new_ref()
    tx_id, result = pay_with_browser(http, sim, merchant, ref, "shopeepay")
    assert result.outcome is BrowserOutcome.RETURNED
    paid = inquire(http, sim, tx_id, ref)
    assert (paid["status"], paid["resultMsg"]) == ("0", "paid")
    assert paid["transDt"] is not None
    assert paid["cancelAmt"] == "0"
    history = sim.engine.history(tx_id)
    steps = [(r.event, r.actor, r.dest) for r in history]
    assert steps == [
        ("open_payment_page", "customer", "unpaid"),
        ("start_processing", "customer", "processing"),
        ("approve", "wallet_partner", "paid"),
    ]


# --- OVO -----------------------------------------------------------------------------------------


def test_ovo_approved_push_returns_to_the_callback(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant
) -> None:
    ref = new_ref()
    sim.script_customer(reference_no=ref, action="approve", delay=0.2)
    tx_id = register(http, sim, merchant, ref, "ovo")["tXid"]
    url = payment_url(sim, payment_fields(merchant, tx_id, ref))
    result = ScriptedBrowser(http, poll_interval=0.05).open(url)
    assert result.outcome is BrowserOutcome.RETURNED
    assert result.result_cd == "0000"
    assert result.params["tXid"] == tx_id
    assert any("/payment/result" in step for step in result.visited[1:-1])
    assert inquire(http, sim, tx_id, ref)["status"] == "0"


def test_ovo_push_declined_by_phone_script_fails(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant
) -> None:
    ref = new_ref()
    phone = "0899" + uuid.uuid4().hex[:8].translate(str.maketrans("abcdef", "123456"))
    sim.script_customer(billing_phone=phone, action="decline")
    tx_id = register(http, sim, merchant, ref, "ovo", billingPhone=phone)["tXid"]
    wait_checked = inquire(http, sim, tx_id, ref)
    assert wait_checked["status"] == "9"
    result = ScriptedBrowser(http, poll_interval=0.05).open(
        payment_url(sim, payment_fields(merchant, tx_id, ref))
    )
    assert result.outcome is BrowserOutcome.RETURNED
    assert result.result_cd == "9752"
    assert inquire(http, sim, tx_id, ref)["status"] == "8"


def test_ovo_ignored_push_expires_and_reports_5(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant
) -> None:
    ref = new_ref()  # unscripted: the OVO customer ignores the push by default
    tx_id = register(http, sim, merchant, ref, "ovo")["tXid"]
    http.get(payment_url(sim, payment_fields(merchant, tx_id, ref)))
    assert inquire(http, sim, tx_id, ref)["status"] == "4"  # the push is out: processing
    wait_until(lambda: sim.engine.get(tx_id).state == "expired")
    expire = sim.engine.history(tx_id)[-1]
    assert (expire.event, expire.actor) == ("expire", "timer")
    assert inquire(http, sim, tx_id, ref)["status"] == "5"
    again = ScriptedBrowser(http).open(payment_url(sim, payment_fields(merchant, tx_id, ref)))
    assert again.outcome is BrowserOutcome.ERROR
    assert again.result_cd == "9752"


# --- redirect wallets through the scripted browser -----------------------------------------------


def test_dana_paid_in_the_browser_returns_with_the_callback_parameters(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant
) -> None:
    ref = new_ref()
    tx_id, result = pay_with_browser(http, sim, merchant, ref, "dana")
    assert result.outcome is BrowserOutcome.RETURNED
    assert result.final_url.startswith(merchant.callback_url(ref))
    callback = next(h for h in merchant.wait(ref, 2) if h.path.startswith("/callback/"))
    expected = {
        "resultCd", "resultMsg", "tXid", "referenceNo", "payMethod", "amt", "currency",
        "goodsNm", "billingNm", "transDt", "transTm", "description", "mitraCd",
    }  # fmt: skip
    assert expected <= set(callback.query)
    assert callback.query["shop"] == "1"  # the merchant's own query survives
    assert (callback.query["tXid"], callback.query["amt"]) == (tx_id, "15000")
    assert callback.query["mitraCd"] == "DANA"
    assert callback.query["resultCd"] == "0000"
    steps = [step.split("?")[0] for step in result.visited]
    assert steps[1].endswith("/partner/dana")
    assert steps[2].endswith("/partner/dana/login")


def test_a_payment_form_post_works_like_the_url(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant
) -> None:
    ref = new_ref()
    tx_id = register(http, sim, merchant, ref, "linkaja")["tXid"]
    result = ScriptedBrowser(http).submit(
        f"{sim.nicepay_url}/direct/v2/payment", payment_fields(merchant, tx_id, ref)
    )
    assert result.outcome is BrowserOutcome.RETURNED
    assert result.result_cd == "0000"


def test_a_payment_with_a_bad_token_shows_an_error_page(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant
) -> None:
    ref = new_ref()
    tx_id = register(http, sim, merchant, ref, "dana")["tXid"]
    fields = payment_fields(merchant, tx_id, ref, amt="15001")
    result = ScriptedBrowser(http).open(payment_url(sim, fields))
    assert result.outcome is BrowserOutcome.ERROR
    assert result.result_cd == "9010"
    no_callback = payment_fields(merchant, tx_id, ref, callBackUrl="")
    assert ScriptedBrowser(http).open(payment_url(sim, no_callback)).result_cd == "9019"


def test_an_abandoned_redirect_payment_expires(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant
) -> None:
    ref = new_ref()
    sim.script_customer(reference_no=ref, action="abandon")
    tx_id, result = pay_with_browser(http, sim, merchant, ref, "linkaja")
    assert result.outcome is BrowserOutcome.ABANDONED
    assert "/partner/linkaja" in result.final_url
    assert merchant.for_ref(ref) == []
    wait_until(lambda: sim.engine.get(tx_id).state == "expired")
    assert inquire(http, sim, tx_id, ref)["status"] == "5"  # the general table, LinkAja too


def test_a_declined_redirect_payment_fails(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant
) -> None:
    ref = new_ref()
    tx_id, result = pay_with_browser(http, sim, merchant, ref, "dana", action="decline")
    assert result.outcome is BrowserOutcome.RETURNED
    assert result.result_cd == "9752"
    assert inquire(http, sim, tx_id, ref)["status"] == "8"


def test_shopeepay_json_answer_carries_both_links(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant
) -> None:
    ref = new_ref()
    tx_id = register(http, sim, merchant, ref, "shopeepay")["tXid"]
    fields = payment_fields(merchant, tx_id, ref, returnJsonFormat="1")
    answer = http.get(payment_url(sim, fields)).json()
    assert answer["resultCd"] == "0000"
    assert answer["redirectUrlHttp"].startswith(f"{sim.base_url}/partner/shopeepay?")
    assert answer["redirectUrlApp"].endswith("&via=app")
    result = ScriptedBrowser(http, prefer="app").open(payment_url(sim, fields))
    assert result.outcome is BrowserOutcome.RETURNED
    assert result.result_cd == "0000"
    assert "via=app" in result.visited[1]


def test_the_callback_can_be_an_auto_submitted_form(http: httpx.Client, merchant: Merchant) -> None:
    ref = new_ref()
    with NicepaySimulator(config(callback_method="post")).serve() as posting:
        tx_id, result = pay_with_browser(http, posting, merchant, ref, "dana")
    assert result.outcome is BrowserOutcome.RETURNED
    callback = next(h for h in merchant.wait(ref, 2) if h.path.startswith("/callback/"))
    assert callback.method == "POST"
    assert callback.form()["tXid"] == tx_id
    assert result.params["resultCd"] == "0000"


# --- AstraPay ------------------------------------------------------------------------------------


def link_fields(merchant: Merchant, ref: str, phone: str = "081200001111") -> dict[str, str]:
    return {
        "timeStamp": now_stamp(),
        "iMid": IMID,
        "referenceNo": ref,
        "payMethod": "05",
        "billingNm": "Budi",
        "billingPhone": phone,
        "billingEmail": "budi@example.com",
        "mitraCd": "ASTR",
        "dbProcessUrl": merchant.notify_url(ref),
        "callBackUrl": merchant.callback_url(ref),
        "userIP": "127.0.0.1",
        "merchantToken": _tokens.link_enable_token(IMID, ref, phone, KEY),
    }


def initiate_fields(
    merchant: Merchant, ref: str, mandate: str, amt: str = "20000"
) -> dict[str, str]:
    return {
        "timeStamp": now_stamp(),
        "iMid": IMID,
        "mandateID": mandate,
        "payMethod": "05",
        "currency": "IDR",
        "amt": amt,
        "goodsNm": "Tea",
        "referenceNo": ref,
        "billingNm": "Budi",
        "billingPhone": "081200001111",
        "billingEmail": "budi@example.com",
        "dbProcessUrl": merchant.notify_url(ref),
        "callBackUrl": merchant.callback_url(ref),
        "merchantToken": _tokens.link_initiate_token(IMID, ref, amt, KEY),
    }


def test_astrapay_link_then_pay_with_the_mandate(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant
) -> None:
    link_ref = new_ref()
    browser = ScriptedBrowser(http)
    linked = browser.submit(f"{sim.nicepay_url}/api/linkEnable.do", link_fields(merchant, link_ref))
    assert linked.outcome is BrowserOutcome.RETURNED
    assert linked.result_cd == "0000"
    mandate = linked.params["mandateID"]
    assert mandate == sim.mandate_of(link_ref)
    assert mandate.isdigit()
    (note,) = [h for h in merchant.wait(link_ref, 2) if h.path.startswith("/notify/")]
    form = note.form()
    assert form["mandateID"] == mandate
    assert form["merchantToken"] == _tokens.link_enable_token(
        IMID, link_ref, form["billingPhone"], KEY
    )

    pay_ref = new_ref()
    paid = browser.submit(
        f"{sim.nicepay_url}/api/linkInitiate.do", initiate_fields(merchant, pay_ref, mandate)
    )
    assert paid.outcome is BrowserOutcome.RETURNED
    assert paid.result_cd == "0000"
    assert "/partner/astrapay?" in paid.visited[1]
    tx_id = paid.params["tXid"]
    status = inquire(http, sim, tx_id, pay_ref, amt="20000")
    assert (status["status"], status["mitraCd"]) == ("0", "ASTR")
    refund = cancel(http, sim, tx_id, pay_ref, amt="5000", cancel_type="2")
    assert refund["resultCd"] == "0000"
    after = inquire(http, sim, tx_id, pay_ref, amt="20000")
    assert (after["status"], after["resultMsg"], after["cancelAmt"]) == ("2", "refund", "5000")


def test_astrapay_unpaid_reports_3_and_a_bad_mandate_is_refused(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant
) -> None:
    link_ref = new_ref()
    ScriptedBrowser(http).submit(
        f"{sim.nicepay_url}/api/linkEnable.do", link_fields(merchant, link_ref)
    )
    mandate = sim.mandate_of(link_ref)
    assert mandate is not None
    pay_ref = new_ref()
    sim.script_customer(reference_no=pay_ref, action="abandon")
    waiting = ScriptedBrowser(http).submit(
        f"{sim.nicepay_url}/api/linkInitiate.do", initiate_fields(merchant, pay_ref, mandate)
    )
    assert waiting.outcome is BrowserOutcome.ABANDONED
    tx_id = sim.transaction(reference_no=pay_ref).tx_id
    assert inquire(http, sim, tx_id, pay_ref, amt="20000")["status"] == "3"

    unknown = ScriptedBrowser(http).submit(
        f"{sim.nicepay_url}/api/linkInitiate.do", initiate_fields(merchant, new_ref(), "123")
    )
    assert unknown.result_cd == "9751"
    sim.revoke_mandate(mandate)
    revoked = ScriptedBrowser(http).submit(
        f"{sim.nicepay_url}/api/linkInitiate.do", initiate_fields(merchant, new_ref(), mandate)
    )
    assert revoked.result_cd == "9752"
    bad = link_fields(merchant, new_ref())
    bad["merchantToken"] = _tokens.link_enable_token(IMID, "other", "0812", KEY)
    assert ScriptedBrowser(http).submit(f"{sim.nicepay_url}/api/linkEnable.do", bad).result_cd == (
        "9010"
    )


def test_the_mandate_field_name_and_place_are_configurable(
    http: httpx.Client, merchant: Merchant
) -> None:
    ref = new_ref()
    settings = config(mandate_field="mandateId", mandate_in="notification")
    with NicepaySimulator(settings).serve() as custom:
        linked = ScriptedBrowser(http).submit(
            f"{custom.nicepay_url}/api/linkEnable.do", link_fields(merchant, ref)
        )
        mandate = custom.mandate_of(ref)
        custom.wait_for_deliveries(1)
    assert linked.result_cd == "0000"
    assert "mandateID" not in linked.params
    assert "mandateId" not in linked.params
    (note,) = [h for h in merchant.wait(ref, 2) if h.path.startswith("/notify/")]
    assert note.form()["mandateId"] == mandate


# --- every ending, every wallet ----------------------------------------------------------------

ENDINGS = {"paid": "0", "voided": "1", "refunded": "2", "expired": "5", "failed": "8"}
LENIENT = CancelRule(void_within=timedelta(days=90), partial_within=timedelta(days=90))


def open_transaction(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant, wallet: str
) -> tuple[str, str, str]:
    """A fresh transaction of ``wallet``: its tXid, referenceNo and amount."""
    ref = new_ref()
    if wallet != "astrapay":
        return register(http, sim, merchant, ref, wallet)["tXid"], ref, "15000"
    link_ref = new_ref()
    browser = ScriptedBrowser(http)
    browser.submit(f"{sim.nicepay_url}/api/linkEnable.do", link_fields(merchant, link_ref))
    mandate = sim.mandate_of(link_ref)
    assert mandate is not None
    sim.script_customer(reference_no=ref, action="abandon")
    browser.submit(
        f"{sim.nicepay_url}/api/linkInitiate.do", initiate_fields(merchant, ref, mandate)
    )
    return sim.transaction(reference_no=ref).tx_id, ref, "20000"


def end_as(
    http: httpx.Client, sim: NicepaySimulator, tx: tuple[str, str, str], ending: str
) -> None:
    tx_id, ref, amt = tx
    if ending == "expired":
        assert sim.expire(tx_id)
    elif ending == "failed":
        assert sim.decline(tx_id)
    else:
        assert sim.approve(tx_id)
    if ending in ("voided", "refunded"):
        partial = ending == "refunded"
        asked = str(int(amt) // 2) if partial else amt
        answer = cancel(http, sim, tx_id, ref, amt=asked, cancel_type="2" if partial else "1")
        assert answer["resultCd"] == "0000", answer


@pytest.mark.parametrize("wallet", [str(w) for w in Wallet])
def test_every_wallet_reports_every_ending_of_the_general_table(
    http: httpx.Client, merchant: Merchant, wallet: str
) -> None:
    rules = dict.fromkeys(Wallet, LENIENT)  # so every wallet may void and refund here
    with NicepaySimulator(config(cancel_rules=rules)).serve() as sim:
        for ending, code in ENDINGS.items():
            tx = open_transaction(http, sim, merchant, wallet)
            end_as(http, sim, tx, ending)
            answer = inquire(http, sim, tx[0], tx[1], amt=tx[2])
            assert (ending, answer["status"], answer["resultMsg"]) == (
                ending,
                code,
                {"paid": "paid", "voided": "void", "refunded": "refund"}.get(ending, ending),
            )
            assert sim.transaction(tx_id=tx[0]).status == code


def test_an_astrapay_refund_may_be_reported_as_astrapays_own_8(
    http: httpx.Client, merchant: Merchant
) -> None:
    rules = dict.fromkeys(Wallet, LENIENT)
    with NicepaySimulator(config(astrapay_refund_status="8", cancel_rules=rules)).serve() as sim:
        refunded = open_transaction(http, sim, merchant, "astrapay")
        end_as(http, sim, refunded, "refunded")
        answer = inquire(http, sim, refunded[0], refunded[1], amt=refunded[2])
        assert (answer["status"], answer["resultMsg"], answer["cancelAmt"]) == (
            "8",
            "refund",
            "10000",
        )
        failed = open_transaction(http, sim, merchant, "astrapay")
        end_as(http, sim, failed, "failed")
        assert inquire(http, sim, failed[0], failed[1], amt=failed[2])["status"] == "8"
        dana = open_transaction(http, sim, merchant, "dana")
        end_as(http, sim, dana, "refunded")
        assert inquire(http, sim, dana[0], dana[1])["status"] == "2"  # only AstraPay's refund


# --- cancel --------------------------------------------------------------------------------------


@pytest.fixture
def clocked() -> Iterator[tuple[NicepaySimulator, ManualClock]]:
    clock = ManualClock(datetime(2026, 5, 4, 16, 30, tzinfo=UTC))  # 23:30 WIB
    settings = config(clock=clock, expiry={}, notify_reversals=False)
    with NicepaySimulator(settings).serve() as simulator:
        yield simulator, clock


def _paid(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant, wallet: str
) -> tuple[str, str]:
    ref = new_ref()
    tx_id = register(http, sim, merchant, ref, wallet)["tXid"]
    assert sim.approve(tx_id)
    return tx_id, ref


def test_dana_cancel_respects_the_blackout_then_voids_and_later_refunds(
    http: httpx.Client, merchant: Merchant, clocked: tuple[NicepaySimulator, ManualClock]
) -> None:
    sim, clock = clocked
    tx_id, ref = _paid(http, sim, merchant, "dana")
    clock.advance(timedelta(hours=1))  # 00:30 WIB
    assert cancel(http, sim, tx_id, ref)["resultCd"] == "9314"
    clock.advance(timedelta(minutes=35))  # 01:05 WIB
    voided = cancel(http, sim, tx_id, ref)
    assert voided["resultCd"] == "0000"
    assert len(voided["canceltXid"]) == 30
    assert inquire(http, sim, tx_id, ref)["status"] == "1"

    late_tx, late_ref = _paid(http, sim, merchant, "dana")
    clock.advance(timedelta(hours=30))  # 07:05 WIB, a day later
    assert cancel(http, sim, late_tx, late_ref, amt="5000", cancel_type="2")["resultCd"] == "0000"
    assert cancel(http, sim, late_tx, late_ref, amt="10000")["resultCd"] == "0000"
    status = inquire(http, sim, late_tx, late_ref)
    assert (status["status"], status["cancelAmt"]) == ("2", "15000")


def test_dana_blocks_after_30_days_and_every_wallet_after_90(
    http: httpx.Client, merchant: Merchant, clocked: tuple[NicepaySimulator, ManualClock]
) -> None:
    sim, clock = clocked
    clock.advance(timedelta(hours=2))  # 01:30 WIB, outside the blackout
    dana_tx, dana_ref = _paid(http, sim, merchant, "dana")
    shopee_tx, shopee_ref = _paid(http, sim, merchant, "shopeepay")
    clock.advance(timedelta(days=31))
    assert cancel(http, sim, dana_tx, dana_ref)["resultCd"] == "9314"
    clock.advance(timedelta(days=60))
    assert cancel(http, sim, shopee_tx, shopee_ref)["resultCd"] == "9334"


def test_ovo_cancels_in_full_on_the_same_day_only(
    http: httpx.Client, merchant: Merchant, clocked: tuple[NicepaySimulator, ManualClock]
) -> None:
    sim, clock = clocked
    clock.advance(timedelta(hours=1))  # 00:30 WIB on 5 May
    same_day, same_ref = _paid(http, sim, merchant, "ovo")
    next_day, next_ref = _paid(http, sim, merchant, "ovo")
    assert cancel(http, sim, same_day, same_ref, amt="100", cancel_type="2")["resultCd"] == "9314"
    assert cancel(http, sim, same_day, same_ref)["resultCd"] == "0000"
    assert inquire(http, sim, same_day, same_ref)["status"] == "1"
    clock.advance(timedelta(hours=23, minutes=40))  # 00:10 WIB on 6 May
    assert cancel(http, sim, next_day, next_ref)["resultCd"] == "9314"


def test_cancel_checks_token_type_and_amounts(
    http: httpx.Client, merchant: Merchant, clocked: tuple[NicepaySimulator, ManualClock]
) -> None:
    sim, clock = clocked
    clock.advance(timedelta(hours=2))
    tx_id, ref = _paid(http, sim, merchant, "shopeepay")
    assert cancel(http, sim, tx_id, ref, cancel_type="3")["resultCd"] == "9301"
    assert cancel(http, sim, tx_id, ref, amt="14000")["resultCd"] == "9319"
    assert cancel(http, sim, tx_id, ref, amt="16000", cancel_type="2")["resultCd"] == "9321"
    stamp = now_stamp()
    body = {
        "timeStamp": stamp,
        "tXid": tx_id,
        "iMid": IMID,
        "payMethod": "05",
        "cancelType": "1",
        "amt": "15000",
        "merchantToken": _tokens.cancel_token(stamp, IMID, tx_id, "1", KEY),
    }
    answer = http.post(f"{sim.nicepay_url}/direct/v2/cancel", json=body).json()
    assert answer["resultCd"] == "9010"
    linkaja_tx, linkaja_ref = _paid(http, sim, merchant, "linkaja")
    partial = cancel(http, sim, linkaja_tx, linkaja_ref, amt="100", cancel_type="2")
    assert partial["resultCd"] == "9314"


def test_unpaid_cancel_and_blackout_are_configurable(
    http: httpx.Client, merchant: Merchant
) -> None:
    clock = ManualClock(datetime(2026, 5, 4, 17, 30, tzinfo=UTC))  # 00:30 WIB
    rules = {"dana": CancelRule(void_within=timedelta(hours=24))}
    settings = config(clock=clock, allow_unpaid_cancel=True, cancel_rules=rules)
    with NicepaySimulator(settings).serve() as lenient:
        ref = new_ref()
        tx_id = register(http, lenient, merchant, ref, "dana")["tXid"]
        assert cancel(http, lenient, tx_id, ref)["resultCd"] == "0000"
        assert inquire(http, lenient, tx_id, ref)["status"] == "1"
        paid_tx, paid_ref = _paid(http, lenient, merchant, "dana")
        assert cancel(http, lenient, paid_tx, paid_ref)["resultCd"] == "0000"
    with NicepaySimulator(config()).serve() as strict:
        ref = new_ref()
        tx_id = register(http, strict, merchant, ref, "dana")["tXid"]
        assert cancel(http, strict, tx_id, ref)["resultCd"] == "9314"


# --- notifications -------------------------------------------------------------------------------


def _notifications(merchant: Merchant, ref: str, count: int) -> list[Hit]:
    hits = [h for h in merchant.wait(ref, count) if h.path.startswith("/notify/")]
    return hits


def test_a_notification_is_a_form_post_with_the_user_agent_and_a_valid_t3(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant
) -> None:
    ref = new_ref()
    tx_id, _ = pay_with_browser(http, sim, merchant, ref, "dana")
    (note,) = _notifications(merchant, ref, 2)
    assert note.method == "POST"
    assert note.headers["user-agent"] == USER_AGENT == "Jakarta Commons-HttpClient/3.1"
    assert note.headers["content-type"] == "application/x-www-form-urlencoded"
    form = note.form()
    assert form["merchantToken"] == _tokens.notification_token(IMID, tx_id, "15000", KEY)
    assert (form["tXid"], form["referenceNo"], form["amt"], form["iMid"]) == (
        tx_id,
        ref,
        "15000",
        IMID,
    )
    assert (form["status"], form["matchCl"], form["payMethod"]) == ("0", "1", "05")
    (delivery,) = [d for d in sim.deliveries if d.reference_no == ref]
    assert delivery.status_code == 200
    assert delivery.kind == "payment"


def test_notifications_can_be_json(http: httpx.Client, merchant: Merchant) -> None:
    ref = new_ref()
    with NicepaySimulator(config(notification_format="json")).serve() as jsonish:
        tx_id, _ = pay_with_browser(http, jsonish, merchant, ref, "linkaja")
        jsonish.wait_for_deliveries(1)
    (note,) = _notifications(merchant, ref, 2)
    assert note.headers["content-type"] == "application/json"
    body = json.loads(note.body)
    assert body["merchantToken"] == _tokens.notification_token(IMID, tx_id, "15000", KEY)


def test_a_reversal_notification_follows_a_cancel(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant
) -> None:
    ref = new_ref()
    tx_id, _ = pay_with_browser(http, sim, merchant, ref, "shopeepay")
    assert cancel(http, sim, tx_id, ref)["resultCd"] == "0000"
    statuses = [n.form()["status"] for n in _notifications(merchant, ref, 3)]
    assert statuses == ["0", "1"]


# --- faults --------------------------------------------------------------------------------------


def test_fault_duplicate_notifications(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant
) -> None:
    ref = new_ref()
    sim.faults.notification(ref, duplicate=2)
    pay_with_browser(http, sim, merchant, ref, "dana")
    notes = _notifications(merchant, ref, 4)
    assert len(notes) == 3
    assert len({n.body for n in notes}) == 1
    wait_until(lambda: len([d for d in sim.deliveries if d.reference_no == ref]) == 3)
    assert sorted(d.copy for d in sim.deliveries if d.reference_no == ref) == [0, 1, 2]


def test_fault_delayed_and_reordered_notifications_come_after_the_callback(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant
) -> None:
    for fault in ({"delay": 0.3}, {"reorder": True}):
        ref = new_ref()
        sim.faults.notification(ref, **fault)
        pay_with_browser(http, sim, merchant, ref, "dana")
        kinds = [h.path.split("/")[1] for h in merchant.wait(ref, 2)]
        assert kinds == ["callback", "notify"], fault


def test_fault_reorder_swaps_two_notifications(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant
) -> None:
    ref = new_ref()
    tx_id = register(http, sim, merchant, ref, "dana")["tXid"]
    sim.faults.notification(ref, reorder=True)
    sim.approve(tx_id)  # status 0, held back
    sim.send_notification(tx_id, status="1")
    statuses = [n.form()["status"] for n in _notifications(merchant, ref, 2)]
    assert statuses == ["1", "0"]


def test_fault_dropped_notification_leaves_only_the_callback(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant
) -> None:
    ref = new_ref()
    sim.faults.notification(ref, drop=True)
    _, result = pay_with_browser(http, sim, merchant, ref, "dana")
    assert result.outcome is BrowserOutcome.RETURNED
    time.sleep(0.3)
    assert [h.path.split("/")[1] for h in merchant.for_ref(ref)] == ["callback"]
    (delivery,) = [d for d in sim.deliveries if d.reference_no == ref]
    assert delivery.dropped
    assert delivery.status_code is None


def test_fault_dropped_callback_leaves_only_the_notification(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant
) -> None:
    ref = new_ref()
    sim.script_customer(reference_no=ref, action="pay", delay=0.1)
    sim.faults.callback(ref)
    _, result = pay_with_browser(http, sim, merchant, ref, "ovo")
    assert result.outcome is BrowserOutcome.CLOSED
    assert [h.path.split("/")[1] for h in merchant.wait(ref, 1)] == ["notify"]


def test_fault_notification_only_for_a_redirect_wallet(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant
) -> None:
    ref = new_ref()
    sim.faults.callback(ref)
    _, result = pay_with_browser(http, sim, merchant, ref, "dana")
    assert result.outcome is BrowserOutcome.CLOSED
    assert [h.path.split("/")[1] for h in merchant.wait(ref, 1)] == ["notify"]


def test_fault_forged_token_and_forged_status(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant
) -> None:
    ref = new_ref()
    sim.faults.notification(ref, forge_token=True, json=True)
    tx_id, _ = pay_with_browser(http, sim, merchant, ref, "dana")
    (forged,) = _notifications(merchant, ref, 2)
    body = json.loads(forged.body)
    assert body["merchantToken"] != _tokens.notification_token(IMID, tx_id, "15000", KEY)

    declined = new_ref()
    sim.faults.notification(declined, forged_status="0")
    declined_tx, _ = pay_with_browser(http, sim, merchant, declined, "dana", action="decline")
    sim.send_notification(declined_tx, status="1")  # the fault rewrites it to "0"
    (note,) = _notifications(merchant, declined, 2)
    form = note.form()
    assert form["status"] == "0"
    assert form["merchantToken"] == _tokens.notification_token(IMID, declined_tx, "15000", KEY)
    assert inquire(http, sim, declined_tx, declined)["status"] == "8"


def test_fault_5xx_once_then_normal(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant
) -> None:
    ref = new_ref()
    tx_id = register(http, sim, merchant, ref)["tXid"]
    sim.faults.response("/direct/v2/inquiry", status=503)
    stamp = now_stamp()
    body = {
        "timeStamp": stamp,
        "tXid": tx_id,
        "iMid": IMID,
        "referenceNo": ref,
        "amt": "15000",
        "merchantToken": _tokens.registration_token(stamp, IMID, ref, "15000", KEY),
    }
    failed = http.post(f"{sim.nicepay_url}/direct/v2/inquiry", json=body)
    assert failed.status_code == 503
    assert "json" not in failed.headers["content-type"]
    assert http.post(f"{sim.nicepay_url}/direct/v2/inquiry", json=body).json()["status"] == "9"


def test_fault_timeout_loses_the_answer_of_a_registration_that_succeeded(
    sim: NicepaySimulator, merchant: Merchant
) -> None:
    ref = new_ref()
    sim.faults.response("/direct/v2/registration", timeout=True)
    with httpx.Client(timeout=0.3) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            register(impatient, sim, merchant, ref)
        assert register(impatient, sim, merchant, ref)["resultCd"] == "9009"
    assert sim.transaction(reference_no=ref).status == "9"


def test_fault_slow_response(http: httpx.Client, sim: NicepaySimulator, merchant: Merchant) -> None:
    sim.faults.response("/registration", slow=0.4)
    started = time.monotonic()
    answer = register(http, sim, merchant, new_ref())
    assert answer["resultCd"] == "0000"
    assert time.monotonic() - started >= 0.4


# --- test control and the command ----------------------------------------------------------------


def test_control_endpoints_outside_the_nicepay_prefix(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant
) -> None:
    ref = new_ref()
    tx_id = register(http, sim, merchant, ref, "ovo")["tXid"]
    scripted = http.post(
        f"{sim.base_url}/_sim/customers", data={"referenceNo": ref, "action": "ignore"}
    )
    assert scripted.json() == {"scripted": "abandon", "delay": 0.0}
    approved = http.post(f"{sim.base_url}/_sim/transactions/{tx_id}/approve").json()
    assert approved["applied"] is True
    assert approved["state"] == "paid"
    view = http.get(f"{sim.base_url}/_sim/transactions/{tx_id}").json()
    assert (view["status"], view["wallet"], view["amount"]) == ("0", "ovo", "15000")
    assert _notifications(merchant, ref, 1)[0].form()["status"] == "0"
    assert http.get(f"{sim.nicepay_url}/direct/v2/registration").status_code == 404


def test_the_simulator_command_serves_until_interrupted(tmp_path: Path) -> None:
    env = {**os.environ, "SIM_TEST_KEY": KEY.get_secret_value()}
    command = [sys.executable, "-c", "from adapters.cli import main; raise SystemExit(main())"]
    args = ["simulator", "--port", "0", "--imid", IMID, "--merchant-key-env", "SIM_TEST_KEY"]
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [*command, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        nicepay_url = first.split()[2]
        assert nicepay_url.startswith("http://127.0.0.1:")
        assert nicepay_url.endswith("/nicepay")
        receiver = Merchant(base_url="http://127.0.0.1:9")
        body = registration_body(receiver, new_ref())
        with httpx.Client(timeout=5.0) as client:
            answer = client.post(f"{nicepay_url}/direct/v2/registration", json=body).json()
        assert answer["resultCd"] == "0000"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            out, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # never leave the server behind for later tests
            process.kill()
            process.communicate()
            raise
    assert process.returncode == 0, err
    assert KEY.get_secret_value() not in first + out + err


def test_the_simulator_command_needs_a_key() -> None:
    from adapters.cli import main

    env_name = f"UNSET_{uuid.uuid4().hex}"
    assert main(["simulator", "--merchant-key-env", env_name]) == 2


def test_cancel_windows_use_wib_time_of_day() -> None:
    rule = CancelRule(blackout=(wall_time(0, 0), wall_time(1, 0)))
    from adapters.simulator._cancel import in_blackout

    assert in_blackout(rule, datetime(2026, 1, 1, 17, 30, tzinfo=UTC))  # 00:30 WIB
    assert not in_blackout(rule, datetime(2026, 1, 1, 0, 30, tzinfo=UTC))  # 07:30 WIB


def test_expiry_windows_are_the_wallet_defaults_scaled_or_overridden() -> None:
    scaled = config(expiry={"dana": 2.0}, expiry_scale=0.01)
    assert scaled.expiry_for(Wallet.OVO) == timedelta(seconds=0.55)
    assert scaled.expiry_for(Wallet.LINKAJA) == timedelta(seconds=3)
    assert scaled.expiry_for(Wallet.DANA) == timedelta(seconds=2)
    flow = flow_with_expiry(scaled)
    deadline = flow.state("unpaid").deadline
    assert deadline is not None
    assert deadline.on_expiry == "expire"
    assert deadline.for_wallet("shopeepay") == timedelta(seconds=3)


def test_an_overlong_link_reference_is_refused(
    http: httpx.Client, sim: NicepaySimulator, merchant: Merchant
) -> None:
    long_ref = "L" * 41
    result = ScriptedBrowser(http).submit(
        f"{sim.nicepay_url}/api/linkEnable.do", link_fields(merchant, long_ref)
    )
    assert result.outcome is BrowserOutcome.ERROR
    assert result.result_cd == "9751"
