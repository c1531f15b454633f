"""Request checks NICEPAY answers with a ``resultCd``: missing fields, formats, tokens, cartData.

Each check raises :class:`Refused` with the code the reference gives (§6.5, §16). The order of
the checks is ours: identity and format first, then the "Undefined" fields in the documented
order, then the token, then content (cartData, duplicates).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import SecretStr

from adapters.nicepay import tokens as _tokens
from adapters.simulator._codes import CURRENCY, MITRA_CD, PAY_METHOD, UNDEFINED_CODE, message
from fsm.flows import Wallet

Fields = Mapping[str, str]

_AMOUNT = re.compile(r"[0-9]{1,12}")
_DIGITS = re.compile(r"[0-9]{1,12}")
MAX_CART = 4000
MAX_REFERENCE = 40

REGISTRATION_REQUIRED = (
    "currency",
    "referenceNo",
    "goodsNm",
    "billingNm",
    "billingPhone",
    "billingEmail",
    "dbProcessUrl",
    "userIP",
    "billingCity",
    "billingState",
    "billingPostCd",
    "billingCountry",
)
LINK_REQUIRED = ("referenceNo", "billingNm", "billingPhone", "billingEmail", "dbProcessUrl")
INITIATE_REQUIRED = (
    "currency",
    "referenceNo",
    "goodsNm",
    "billingNm",
    "billingPhone",
    "billingEmail",
    "callBackUrl",
    "dbProcessUrl",
)


class Refused(Exception):
    """NICEPAY refuses the request with ``code``."""

    def __init__(self, code: str, detail: str | None = None) -> None:
        self.code = code
        self.detail = detail or message(code)
        super().__init__(f"{code}: {self.detail}")


def require(fields: Fields, names: Iterable[str]) -> None:
    """Refuse with the field's "Undefined" code (9751 when it has none) if one is missing."""
    for name in names:
        if not fields.get(name):
            raise Refused(UNDEFINED_CODE.get(name, "9751"), f"{name} is undefined")


def check_merchant(fields: Fields, imid: str) -> None:
    """The common head of every request: iMid (9011), then timeStamp (9031)."""
    if fields.get("iMid") != imid:
        raise Refused("9011")
    check_timestamp(fields)


def check_timestamp(fields: Fields) -> None:
    """``timeStamp`` is 14 digits naming a real moment (9031)."""
    stamp = fields.get("timeStamp", "")
    try:
        valid = len(stamp) == 14 and bool(datetime.strptime(stamp, "%Y%m%d%H%M%S"))
    except ValueError:
        valid = False
    if not valid:
        raise Refused("9031", "timeStamp must be YYYYMMDDHHMMSS")


def check_pay_method(fields: Fields) -> None:
    """Only e-wallets (``05``) are activated for this merchant (9012)."""
    if fields.get("payMethod") != PAY_METHOD:
        raise Refused("9012")


def check_amount(amount: str | None) -> str:
    """``amt`` is present (9007) and 1-12 digits without decimals (9008); returns it."""
    if not amount:
        raise Refused("9007")
    if not _AMOUNT.fullmatch(amount):
        raise Refused("9008")
    return amount


def check_token(expected: str, fields: Fields) -> None:
    """The ``merchantToken`` matches (9010)."""
    if not _tokens.token_matches(expected, fields.get("merchantToken")):
        raise Refused("9010")


def check_registration(fields: Fields, imid: str, key: SecretStr) -> Wallet:
    """Every registration check except the duplicate referenceNo; returns the wallet."""
    check_merchant(fields, imid)
    check_pay_method(fields)
    amount = check_amount(fields.get("amt"))
    require(fields, REGISTRATION_REQUIRED)
    require(fields, ("billingAddr", "mitraCd"))
    if not fields.get("cartData"):
        raise Refused("9022", "cartData is undefined")
    wallet = _registrable_wallet(fields)
    _check_basics(fields)
    expected = _tokens.registration_token(
        fields["timeStamp"], imid, fields["referenceNo"], amount, key
    )
    check_token(expected, fields)
    check_cart(fields["cartData"], amount, wallet)
    return wallet


def _registrable_wallet(fields: Fields) -> Wallet:
    wallet = MITRA_CD.get(fields["mitraCd"])
    if wallet is None or wallet is Wallet.ASTRAPAY:  # AstraPay pays through linkInitiate.do
        raise Refused("9751", f"mitraCd {fields['mitraCd']!r} is not a registrable e-wallet")
    return wallet


def _check_basics(fields: Fields) -> None:
    if fields.get("currency", CURRENCY) != CURRENCY:
        raise Refused("9751", "currency must be IDR")
    check_reference(fields)


def check_reference(fields: Fields) -> None:
    """``referenceNo`` fits its 40 characters (9751)."""
    if len(fields.get("referenceNo", "")) > MAX_REFERENCE:
        raise Refused("9751", "referenceNo is longer than 40 characters")


def check_cart(cart: str, amount: str, wallet: Wallet) -> None:
    """``cartData`` is valid JSON (9022) whose lines add up to ``amt`` (9023)."""
    if len(cart) > MAX_CART:
        raise Refused("9022", "cartData is longer than 4000 characters")
    try:
        document = json.loads(cart)
    except ValueError:
        raise Refused("9022", "cartData is not JSON") from None
    items = document.get("item") if isinstance(document, dict) else None
    if not isinstance(items, list) or not items:
        raise Refused("9022", "cartData has no item list")
    count = document.get("count")
    if count is not None and str(count) != str(len(items)):
        raise Refused("9022", "cartData count differs from its items")
    if sum(_line_total(item, wallet) for item in items) != int(amount):
        raise Refused("9023")


def _line_total(item: Any, wallet: Wallet) -> int:
    if not isinstance(item, dict):
        raise Refused("9022", "a cartData item is not an object")
    price = _cart_number(item.get("goods_amt"), "goods_amt")
    if item.get("goods_quantity") is None:
        if wallet is Wallet.LINKAJA:
            raise Refused("9022", "LinkAja needs goods_quantity")
        return price
    return price * _cart_number(item["goods_quantity"], "goods_quantity")


def _cart_number(value: Any, name: str) -> int:
    text = "" if value is None or isinstance(value, bool) else str(value)
    if not _DIGITS.fullmatch(text):
        raise Refused("9022", f"cartData {name} must be digits")
    return int(text)
