"""The values the adapter tests share: the merchant's credentials, orders, and what NICEPAY sends.

Tokens are computed here with hashlib, independently of ``adapters.nicepay.tokens``. NICEPAY itself
is the simulator (``tests.adapters.mock_nicepay``); these are only the values on either side.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from adapters.inbound.parsing import InboundRequest
from adapters.nicepay.config import NicepayCredentials
from adapters.nicepay.messages import Billing, CartItem, RegistrationRequest
from adapters.service import LinkOrder, PaymentOrder
from fsm.flows import Wallet
from fsm.model import Instance

IMID = "IONPAYTEST"
KEY_TEXT = "sEcReT-merchant-KEY-0123456789"
ORIGIN = "http://nicepay.test"
BASE = ORIGIN + "/nicepay"
CREDENTIALS = NicepayCredentials(imid=IMID, merchant_key=KEY_TEXT, base_url=BASE)
START = datetime(2025, 1, 31, 17, 30, tzinfo=UTC)  # 2025-02-01 00:30:00 WIB
START_TS = "20250201003000"
TXID = "IONPAYTEST05202502010030001234"
"""A tXid in NICEPAY's layout, for calls whose answer a test gives itself."""


def sha(*parts: str) -> str:
    """The token, computed independently of adapters.nicepay.tokens."""
    return hashlib.sha256("".join(parts).encode("utf-8")).hexdigest()


def ok(**fields: Any) -> dict[str, Any]:
    """A JSON answer reporting success, with ``fields``."""
    return {"resultCd": "0000", "resultMsg": "SUCCESS", **fields}


def refusal(code: str, message: str = "refused") -> dict[str, str]:
    """A JSON answer refusing with ``code``."""
    return {"resultCd": code, "resultMsg": message}


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


# --- what the merchant's service sends and receives ----------------------------------------------

NOTIFY_URL = "https://merchant.example/nicepay/notification"
CALLBACK_URL = "https://merchant.example/nicepay/callback"
AMOUNT = "12000"
_SERIAL = itertools.count(1)


def new_tx_id(stamp: str = START_TS) -> str:
    """A tXid in NICEPAY's layout it never gave (its serials count from 1, these from 9000)."""
    return f"{IMID}05{stamp}{9000 + next(_SERIAL) % 1000:04d}"


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


# --- AstraPay: what NICEPAY sends about links and payments -------------------------------------

MANDATE = "7700123456789"
"""A mandate as AstraPay grants one, for tests of the merchant's side alone."""
PHONE = "08123456789"
"""The billing() customer's phone, which the link token (T4) covers."""


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
