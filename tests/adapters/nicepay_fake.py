"""A scripted fake NICEPAY for ``httpx.MockTransport`` with the values tests share."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from adapters.client import InquiryRetry, NicepayClient
from adapters.config import NicepayCredentials
from adapters.messages import Billing, CartItem, RegistrationRequest
from fsm.clock import ManualClock

IMID = "IONPAYTEST"
KEY_TEXT = "sEcReT-merchant-KEY-0123456789"
BASE = "http://nicepay.test/nicepay"
CREDENTIALS = NicepayCredentials(imid=IMID, merchant_key=KEY_TEXT, base_url=BASE)
START = datetime(2025, 1, 31, 17, 30, tzinfo=UTC)  # 2025-02-01 00:30:00 WIB
START_TS = "20250201003000"
TXID = "IONPAYTEST05202502010030001234"

Reply = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


def sha(*parts: str) -> str:
    """The token, computed independently of adapters._tokens."""
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
