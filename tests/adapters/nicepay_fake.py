"""A scripted fake NICEPAY for ``httpx.MockTransport`` with the values tests share."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx

from adapters.inbound.parsing import InboundRequest
from adapters.nicepay.client import (
    INQUIRY_PATH,
    PAYMENT_PATH,
    REGISTRATION_PATH,
    InquiryRetry,
    NicepayClient,
)
from adapters.nicepay.config import NicepayCredentials
from adapters.nicepay.messages import Billing, CartItem, RegistrationRequest
from adapters.service import LinkOrder, PaymentOrder, PaymentService
from fsm.clock import ManualClock
from fsm.definition import Actor
from fsm.engine import Engine
from fsm.flows import FLOWS, Wallet
from fsm.model import Instance
from fsm.store.sql import SqlStore

IMID = "IONPAYTEST"
KEY_TEXT = "sEcReT-merchant-KEY-0123456789"
BASE = "http://nicepay.test/nicepay"
CREDENTIALS = NicepayCredentials(imid=IMID, merchant_key=KEY_TEXT, base_url=BASE)
START = datetime(2025, 1, 31, 17, 30, tzinfo=UTC)  # 2025-02-01 00:30:00 WIB
START_TS = "20250201003000"
TXID = "IONPAYTEST05202502010030001234"

Reply = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


def sha(*parts: str) -> str:
    """The token, computed independently of adapters.nicepay.tokens."""
    return hashlib.sha256("".join(parts).encode("utf-8")).hexdigest()


def ok(**fields: Any) -> httpx.Response:
    return httpx.Response(200, json={"resultCd": "0000", "resultMsg": "SUCCESS", **fields})


def refused(code: str, message: str = "refused", status: int = 200) -> httpx.Response:
    return httpx.Response(status, json={"resultCd": code, "resultMsg": message})


def registered(reference_no: str = "ORD-1", tx_id: str = TXID) -> httpx.Response:
    return ok(tXid=tx_id, referenceNo=reference_no, amt="12000", transDt="20250201")


def timeout() -> httpx.ReadTimeout:
    return httpx.ReadTimeout("read timed out")


@dataclass
class FakeNicepay:
    """Answers each request with the next scripted reply and records every request."""

    replies: list[Reply]
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.replies:
            raise AssertionError(f"unexpected request to {request.url}")
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, httpx.Response):
            return reply
        return reply(request)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(request.content) for request in self.requests]


@dataclass
class Harness:
    fake: FakeNicepay
    clock: ManualClock
    client: NicepayClient
    sleeps: list[float]


def harness(
    *replies: Reply,
    retry: InquiryRetry | None = None,
    credentials: NicepayCredentials = CREDENTIALS,
) -> Harness:
    """A client on a fake NICEPAY whose sleeps are recorded and move the clock."""
    fake = FakeNicepay(list(replies))
    clock = ManualClock(START)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(timedelta(seconds=seconds))

    http = httpx.Client(transport=httpx.MockTransport(fake), timeout=httpx.Timeout(5.0))
    retry = retry or InquiryRetry(attempts=3, base_delay=1.0, max_delay=4.0)
    client = NicepayClient(http, credentials, clock=clock, inquiry_retry=retry, sleep=sleep)
    return Harness(fake, clock, client, sleeps)


def billing() -> Billing:
    return Billing(
        name="Budi Santoso",
        phone="08123456789",
        email="budi@example.id",
        address="Jl. Sudirman 1",
        city="Jakarta",
        state="DKI Jakarta",
        post_code="10220",
        country="Indonesia",
    )


def registration(reference_no: str = "ORD-1", **overrides: Any) -> RegistrationRequest:
    """A DANA registration of 12000: two teas at 5000 and 2000 shipping."""
    fields: dict[str, Any] = {
        "amount": "12000",
        "reference_no": reference_no,
        "goods_name": "Tea",
        "mitra_cd": "DANA",
        "billing": billing(),
        "cart": (
            CartItem(goods_name="Tea", goods_amt="5000", goods_quantity="2"),
            CartItem(goods_name="Shipping", goods_amt="2000"),
        ),
        "user_ip": "127.0.0.1",
        "db_process_url": "https://merchant.example/nicepay/notify",
    }
    return RegistrationRequest(**{**fields, **overrides})


# --- a fake NICEPAY that keeps its transactions, for the service, the adapters and the handler ---

NOTIFY_URL = "https://merchant.example/nicepay/notification"
CALLBACK_URL = "https://merchant.example/nicepay/callback"
AMOUNT = "12000"
_SERIAL = itertools.count(1)


def new_tx_id(stamp: str = START_TS) -> str:
    """A tXid in NICEPAY's inferred layout, unique within this test run."""
    return f"{IMID}05{stamp}{next(_SERIAL) % 10000:04d}"


@dataclass
class NicepayLedger:
    """A fake NICEPAY that remembers transactions: registration, inquiry, ShopeePay's links.

    Every T1 is checked (a wrong one, or an inquiry for another referenceNo or amount, answers
    ``9010``), and a repeated ``referenceNo`` answers ``9009``. ``status`` holds each tXid's
    inquiry status (``None`` answers a JSON ``null``) and ``cancelled`` its ``cancelAmt`` (by
    default the whole amount once the status is a void or refund). A reply queued in
    ``script[path]`` is used first, once: a refusal, a timeout, a garbled body.
    """

    status: dict[str, str | None] = field(default_factory=dict)
    cancelled: dict[str, str] = field(default_factory=dict)
    transactions: dict[str, dict[str, str]] = field(default_factory=dict)
    script: dict[str, list[Reply]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path.removeprefix("/nicepay")
        queued = self.script.get(path)
        if queued:
            reply = queued.pop(0)
            if isinstance(reply, Exception):
                raise reply
            return reply if isinstance(reply, httpx.Response) else reply(request)
        routes = {
            REGISTRATION_PATH: self.registration,
            INQUIRY_PATH: self.inquiry,
            PAYMENT_PATH: self.payment_links,
        }
        if path not in routes:
            raise AssertionError(f"unexpected request to {request.url}")
        return routes[path](request)

    def sent(self, path: str) -> list[httpx.Request]:
        """The requests made to ``path`` (e.g. ``/direct/v2/inquiry``), in order."""
        return [r for r in self.requests if r.url.path.removeprefix("/nicepay") == path]

    def add(
        self, tx_id: str, reference_no: str, amount: str, *, status: str = "9", mitra_cd: str = ""
    ) -> None:
        """A transaction NICEPAY knows, e.g. from a linkInitiate the customer's browser sent."""
        self.transactions[tx_id] = {"referenceNo": reference_no, "amt": amount, "mitraCd": mitra_cd}
        self.status[tx_id] = status

    def registration(self, request: httpx.Request) -> httpx.Response:
        """Register a transaction (status 9) under a new tXid."""
        body = json.loads(request.content)
        stamp, reference_no, amount = body["timeStamp"], body["referenceNo"], body["amt"]
        if body.get("merchantToken") != sha(stamp, IMID, reference_no, amount, KEY_TEXT):
            return refused("9010", "Invalid merchantToken")
        if any(t["referenceNo"] == reference_no for t in self.transactions.values()):
            return refused("9009", "Duplicate referenceNo")
        tx_id = new_tx_id(stamp)
        self.add(tx_id, reference_no, amount, mitra_cd=body["mitraCd"])
        return ok(
            tXid=tx_id,
            referenceNo=reference_no,
            payMethod="05",
            amt=amount,
            transDt=stamp[:8],
            transTm=stamp[8:],
        )

    def inquiry(self, request: httpx.Request) -> httpx.Response:
        """Answer the transaction's ``status``."""
        body = json.loads(request.content)
        tx_id = body.get("tXid", "")
        known = self.transactions.get(tx_id)
        if known is None:
            return refused("9010", "transaction not found")
        token = sha(body["timeStamp"], IMID, known["referenceNo"], known["amt"], KEY_TEXT)
        signed = (body.get("merchantToken"), body.get("referenceNo"), body.get("amt"))
        if signed != (token, known["referenceNo"], known["amt"]):
            return refused("9010", "Invalid merchantToken")
        return ok(
            tXid=tx_id,
            iMid=IMID,
            referenceNo=known["referenceNo"],
            amt=known["amt"],
            payMethod="05",
            mitraCd=known["mitraCd"],
            currency="IDR",
            cancelAmt=self.cancelled.get(
                tx_id, known["amt"] if self.status[tx_id] in ("1", "2") else "0"
            ),
            status=self.status[tx_id],
        )

    def payment_links(self, request: httpx.Request) -> httpx.Response:
        """Answer a ``returnJsonFormat=1`` payment step with ShopeePay's app and web links."""
        form = dict(parse_qsl(request.content.decode(), strict_parsing=True))
        tx_id = form["tXid"]
        known = self.transactions[tx_id]
        token = sha(form["timeStamp"], IMID, known["referenceNo"], known["amt"], KEY_TEXT)
        if form.get("merchantToken") != token or form.get("returnJsonFormat") != "1":
            return refused("9010", "Invalid merchantToken")
        if self.status[tx_id] == "9":
            self.status[tx_id] = "3"  # the customer reached the payment step
        return httpx.Response(
            200,
            json={
                "redirectUrlApp": f"shopeeid://main/pay?tXid={tx_id}",
                "redirectUrlHttp": f"https://pay.shopee.test/checkout/{tx_id}",
            },
        )


@dataclass
class ServiceRig:
    """A PaymentService over a real engine and store, its client on a :class:`NicepayLedger`."""

    ledger: NicepayLedger
    clock: ManualClock
    engine: Engine
    client: NicepayClient
    service: PaymentService


def service_rig(store: SqlStore) -> ServiceRig:
    """A service on ``store`` whose clock starts at :data:`START`; inquiries try twice, no wait."""
    ledger = NicepayLedger()
    clock = ManualClock(START)
    http = httpx.Client(transport=httpx.MockTransport(ledger), timeout=httpx.Timeout(5.0))
    client = NicepayClient(
        http,
        CREDENTIALS,
        clock=clock,
        inquiry_retry=InquiryRetry(attempts=2, base_delay=0.0, max_delay=0.0),
        sleep=lambda _seconds: None,
    )
    engine = Engine(store, flows=FLOWS, clock=clock)
    service = PaymentService(
        engine,
        client,
        notification_url=NOTIFY_URL,
        callback_url=CALLBACK_URL,
        reference_suffix=lambda: "R1",
    )
    return ServiceRig(ledger, clock, engine, client, service)


def payment_order(
    wallet: str, reference_no: str = "ORD-1", *, link_id: str | None = None
) -> PaymentOrder:
    """An order of 12000: two teas at 5000 and 2000 shipping."""
    return PaymentOrder(
        wallet=Wallet(wallet),
        reference_no=reference_no,
        amount=AMOUNT,
        goods_name="Tea",
        billing=billing(),
        cart=(
            CartItem(goods_name="Tea", goods_amt="5000", goods_quantity="2"),
            CartItem(goods_name="Shipping", goods_amt="2000"),
        ),
        user_ip="127.0.0.1",
        link_id=link_id,
    )


def link_order(reference_no: str = "LNK-1") -> LinkOrder:
    """An AstraPay account link for the billing() customer."""
    return LinkOrder(
        reference_no=reference_no,
        billing_name="Budi Santoso",
        billing_phone="08123456789",
        billing_email="budi@example.id",
        user_ip="127.0.0.1",
    )


FORM = "application/x-www-form-urlencoded"


def signed_notification(payment: Instance, **changes: str | None) -> dict[str, str]:
    """What NICEPAY posts to dbProcessUrl for ``payment``, with a valid T3 for the stored amount.

    A change to ``None`` removes that field.
    """
    tx_id = payment.tx_id or ""
    params: dict[str, str | None] = {
        "tXid": tx_id,
        "referenceNo": payment.reference_no or "",
        "payMethod": "05",
        "amt": AMOUNT,
        "iMid": IMID,
        "currency": "IDR",
        "goodsNm": "Tea",
        "billingNm": "Budi Santoso",
        "transDt": "20250201",
        "transTm": "003512",
        "matchCl": "1",
        "status": "0",
        "mitraCd": "DANA",
        "merchantToken": sha(IMID, tx_id, AMOUNT, KEY_TEXT),
        **changes,
    }
    return {name: value for name, value in params.items() if value is not None}


def form_request(params: Mapping[str, str], **extra: Any) -> InboundRequest:
    """``params`` as a form-encoded request body."""
    return InboundRequest(body=urlencode(params).encode(), content_type=FORM, **extra)


def logged_events(rig: ServiceRig, instance_id: str) -> list[tuple[str, str]]:
    """The applied steps of an instance as (event, actor)."""
    return [(record.event, record.actor) for record in rig.engine.history(instance_id)]


def inquiries_sent(rig: ServiceRig) -> int:
    """How many inquiries reached the fake NICEPAY."""
    return len(rig.ledger.sent(INQUIRY_PATH))


# --- AstraPay: a linked account, and what NICEPAY sends about links and payments ----------------

MANDATE = "7700123456789"
PHONE = "08123456789"
"""The billing() customer's phone, which the link token (T4) covers."""


def linked_account(rig: ServiceRig, reference_no: str = "LNK-1") -> Instance:
    """An AstraPay link an operator confirmed with :data:`MANDATE`."""
    link = rig.service.start_link(link_order(reference_no)).instance
    rig.engine.fire(
        link.id,
        "confirm_link",
        actor=Actor.OPERATOR,
        idempotency_key="op",
        payload={"mandate": MANDATE},
    )
    return rig.engine.get(link.id)


def link_notification(reference_no: str, **changes: str) -> dict[str, str]:
    """NICEPAY's link notification with a valid T4; a change to ``""`` removes that field."""
    params = {
        "referenceNo": reference_no,
        "billingPhone": PHONE,
        "iMid": IMID,
        "payMethod": "05",
        "mitraCd": "ASTR",
        "status": "0",
        "mandateID": MANDATE,
        "merchantToken": sha(IMID, reference_no, PHONE, KEY_TEXT),
    }
    return {key: value for key, value in {**params, **changes}.items() if value}


def astrapay_notification(payment: Instance, tx_id: str) -> InboundRequest:
    """NICEPAY's notification that ``tx_id`` (the payment's AstraPay transaction) was paid."""
    token = sha(IMID, tx_id, AMOUNT, KEY_TEXT)
    return form_request(
        signed_notification(payment, tXid=tx_id, mitraCd="ASTR", merchantToken=token)
    )
