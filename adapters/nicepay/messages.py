"""What we send NICEPAY, as frozen pydantic models, snake_case with camelCase aliases.

Requests are strict: every value is a string (amounts are exact digit strings of at most 12
digits), sizes follow the reference, and ``cartData`` must add up to ``amt`` before anything is
sent. They carry the business fields only; the client adds ``timeStamp``, ``iMid`` and the
token. The browser's steps (:class:`BrowserForm`, :class:`PaymentStep`) are built here too: the
library makes them and the customer's browser sends them. NICEPAY's answers are in
:mod:`adapters.nicepay.responses`.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from functools import cached_property
from typing import Annotated, Final, Literal
from urllib.parse import urlencode

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

PAY_METHOD_EWALLET: Final = "05"
CART_DATA_MAX: Final = 4000


def amount_string(value: str | int) -> str:
    """The exact digit string NICEPAY expects for ``amt``.

    Args:
        value: Whole rupiah as an ``int``, or an already exact digit string (kept byte for byte).

    Returns:
        A string of 1 to 12 digits.

    Raises:
        ValueError: a bool, a negative number, decimals, separators or more than 12 digits.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"amount must be an int or a digit string, not {type(value).__name__}")
    text = str(value)
    # isascii() too: str.isdigit() also accepts digits of other scripts, which NICEPAY would not.
    if not (text.isascii() and text.isdigit() and len(text) <= 12):
        raise ValueError(f"amount {text!r} is not 1-12 digits without decimals or separators")
    return text


def _as_amount(value: object) -> object:
    # Ints are welcome (rendered once, here); anything else reaches the pattern and fails there.
    return amount_string(value) if isinstance(value, int) and not isinstance(value, bool) else value


Amount = Annotated[str, BeforeValidator(_as_amount), StringConstraints(pattern=r"^[0-9]{1,12}$")]
Quantity = Annotated[
    str, BeforeValidator(_as_amount), StringConstraints(pattern=r"^[1-9][0-9]{0,11}$")
]
Digits = Annotated[str, StringConstraints(pattern=r"^[0-9]*$")]
RegistrationMitra = Literal["OVOE", "DANA", "LINK", "ESHP"]


def _text(max_length: int, *, required: bool = True) -> StringConstraints:
    return StringConstraints(min_length=1 if required else 0, max_length=max_length)


class _Request(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True
    )

    def _wire(self, *, exclude: set[str] | None = None) -> dict[str, str]:
        dumped = self.model_dump(by_alias=True, exclude=exclude, exclude_none=True)
        return {name: str(value) for name, value in dumped.items()}


class Billing(_Request):
    """The buyer, sent as the ``billing*`` fields. ``name`` is not capped at 30 (a conflict)."""

    name: Annotated[str, _text(100)] = Field(alias="billingNm")
    phone: Annotated[Digits, _text(15)] = Field(alias="billingPhone")
    email: Annotated[str, _text(40)] = Field(alias="billingEmail")
    address: Annotated[str, _text(100)] = Field(alias="billingAddr")
    city: Annotated[str, _text(50)] = Field(alias="billingCity")
    state: Annotated[str, _text(50)] = Field(alias="billingState")
    post_code: Annotated[Digits, _text(10)] = Field(alias="billingPostCd")
    country: Annotated[str, _text(10)] = Field(alias="billingCountry")

    def wire_fields(self) -> dict[str, str]:
        """The ``billing*`` fields as NICEPAY names them."""
        return self._wire()


class Delivery(_Request):
    """Optional shipping details, sent as the ``delivery*`` fields that are set."""

    name: str | None = Field(None, alias="deliveryNm", max_length=30)
    phone: str | None = Field(None, alias="deliveryPhone", pattern=r"^[0-9]{0,15}$")
    address: str | None = Field(None, alias="deliveryAddr", max_length=100)
    city: str | None = Field(None, alias="deliveryCity", max_length=50)
    state: str | None = Field(None, alias="deliveryState", max_length=50)
    post_code: str | None = Field(None, alias="deliveryPostCd", pattern=r"^[0-9]{0,10}$")
    country: str | None = Field(None, alias="deliveryCountry", max_length=10)

    def wire_fields(self) -> dict[str, str]:
        """The ``delivery*`` fields that are set, as NICEPAY names them."""
        return self._wire()


class CartItem(_Request):
    """One ``cartData`` line; ``goods_amt`` is the unit price and the wire names are snake_case."""

    goods_name: Annotated[str, _text(100)]
    goods_amt: Amount
    goods_quantity: Quantity = "1"  # always sent: LinkAja requires it
    goods_detail: str = ""
    img_url: str = ""
    goods_id: str | None = None
    goods_type: str | None = None
    goods_url: str | None = None
    goods_sellers_id: str | None = None
    goods_sellers_name: str | None = None

    @property
    def line_total(self) -> int:
        """Unit price times quantity, in whole rupiah."""
        return int(self.goods_amt) * int(self.goods_quantity)

    def wire_item(self) -> dict[str, str]:
        """The item object inside ``cartData``, documented keys first."""
        order = ("img_url", "goods_name", "goods_detail", "goods_amt", "goods_quantity")
        fields = self._wire()
        return {**{key: fields[key] for key in order}, **fields}


def cart_data(items: tuple[CartItem, ...]) -> str:
    """``cartData`` serialised once, compactly: ``{"count": "<n>", "item": [...]}``."""
    document = {"count": str(len(items)), "item": [item.wire_item() for item in items]}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


class RegistrationRequest(_Request):
    """The business fields of ``/direct/v2/registration`` (reference §7).

    Raises:
        pydantic.ValidationError: on construction, when a field is malformed or the cart's
            ``goods_amt * goods_quantity`` lines do not add up to ``amount``.
    """

    amount: Amount = Field(alias="amt")
    reference_no: Annotated[str, _text(40)] = Field(alias="referenceNo")
    goods_name: Annotated[str, _text(100)] = Field(alias="goodsNm")
    mitra_cd: RegistrationMitra = Field(alias="mitraCd")
    billing: Billing
    cart: tuple[CartItem, ...] = Field(min_length=1)
    user_ip: Annotated[str, _text(15)] = Field(alias="userIP")
    db_process_url: Annotated[str, _text(255)] = Field(alias="dbProcessUrl")
    description: Annotated[str, _text(100, required=False)] = ""
    currency: Literal["IDR"] = "IDR"
    pay_method: Literal["05"] = Field(PAY_METHOD_EWALLET, alias="payMethod")
    delivery: Delivery | None = None
    vat: Amount | None = None
    fee: Amount | None = None
    notax_amt: Amount | None = Field(None, alias="notaxAmt")
    # Whether e-wallets honour a custom expiry is unconfirmed: send them empty (reference §7).
    pay_valid_dt: Literal[""] = Field("", alias="payValidDt")
    pay_valid_tm: Literal[""] = Field("", alias="payValidTm")
    shop_id: str = Field("", alias="shopId")
    req_dt: Digits | None = Field(None, alias="reqDt")
    req_tm: Digits | None = Field(None, alias="reqTm")
    req_domain: str | None = Field(None, alias="reqDomain")
    req_server_ip: str | None = Field(None, alias="reqServerIP")
    req_client_ver: str | None = Field(None, alias="reqClientVer")
    user_session_id: str | None = Field(None, alias="userSessionID")
    user_agent: str | None = Field(None, alias="userAgent")
    user_language: str | None = Field(None, alias="userLanguage")

    @model_validator(mode="after")
    def _cart_adds_up(self) -> RegistrationRequest:
        total = sum(item.line_total for item in self.cart)
        if total != int(self.amount):
            raise ValueError(
                f"cartData adds up to {total} (sum of goods_amt * goods_quantity) "
                f"but amt is {self.amount}; add shipping or fee lines so they match"
            )
        if len(self.cart_data) > CART_DATA_MAX:
            raise ValueError(f"cartData is {len(self.cart_data)} characters, over {CART_DATA_MAX}")
        return self

    @cached_property
    def cart_data(self) -> str:
        """The ``cartData`` string, serialised once and reused for every send."""
        return cart_data(self.cart)

    def wire_fields(self) -> dict[str, str]:
        """Every business field under its NICEPAY name, each a string (no auth fields)."""
        fields = self._wire(exclude={"billing", "cart", "delivery"})
        fields.update(self.billing.wire_fields())
        if self.delivery is not None:
            fields.update(self.delivery.wire_fields())
        fields["cartData"] = self.cart_data
        return fields

    def with_reference_no(self, reference_no: str) -> RegistrationRequest:
        """A validated copy under another ``referenceNo`` (for the recovery of pitfall 7)."""
        fields = self.model_dump(exclude_none=True)  # by field name, nested models included
        return RegistrationRequest.model_validate({**fields, "reference_no": reference_no})


_AUTH_FIELDS: Final = frozenset({"timeStamp", "iMid", "merchantToken"})


class _FormRequest(_Request):
    # The AstraPay pages were truncated, so callers may add fields nobody has documented yet.
    extra_fields: Mapping[str, str] = Field(default_factory=dict)
    callback_url: Annotated[str, _text(255)] | None = Field(None, alias="callBackUrl")
    description: Annotated[str, _text(100, required=False)] = ""

    @model_validator(mode="after")
    def _extras_do_not_replace(self) -> _FormRequest:
        documented = {info.alias or name for name, info in type(self).model_fields.items()}
        clash = sorted(set(self.extra_fields) & (documented | _AUTH_FIELDS))
        if clash:
            raise ValueError(f"extra_fields may not replace documented fields: {clash}")
        return self

    def _form(self, core: dict[str, str]) -> dict[str, str]:
        return {**core, **self.extra_fields}


class LinkEnableRequest(_FormRequest):
    """The business fields of AstraPay ``/api/linkEnable.do`` (§13; partly unconfirmed)."""

    reference_no: Annotated[str, _text(40)] = Field(alias="referenceNo")
    billing_name: Annotated[str, _text(100)] = Field(alias="billingNm")
    billing_phone: Annotated[Digits, _text(15)] = Field(alias="billingPhone")
    billing_email: Annotated[str, _text(40)] = Field(alias="billingEmail")
    db_process_url: Annotated[str, _text(255)] = Field(alias="dbProcessUrl")
    user_ip: Annotated[str, _text(15)] = Field(alias="userIP")
    mitra_cd: Literal["ASTR"] = Field("ASTR", alias="mitraCd")
    pay_method: Literal["05"] = Field(PAY_METHOD_EWALLET, alias="payMethod")

    def wire_fields(self) -> dict[str, str]:
        """The form fields under their NICEPAY names, extra fields last (no auth fields)."""
        return self._form(self._wire(exclude={"extra_fields"}))


class LinkInitiateRequest(_FormRequest):
    """The business fields of AstraPay ``/api/linkInitiate.do`` (§13; partly unconfirmed)."""

    mandate_id: Annotated[str, _text(40)] = Field(alias="mandateID")
    amount: Amount = Field(alias="amt")
    reference_no: Annotated[str, _text(40)] = Field(alias="referenceNo")
    goods_name: Annotated[str, _text(100)] = Field(alias="goodsNm")
    billing: Billing
    delivery: Delivery | None = None
    db_process_url: Annotated[str, _text(255)] | None = Field(None, alias="dbProcessUrl")
    currency: Literal["IDR"] = "IDR"
    pay_method: Literal["05"] = Field(PAY_METHOD_EWALLET, alias="payMethod")

    def wire_fields(self) -> dict[str, str]:
        """The form fields under their NICEPAY names, extra fields last (no auth fields)."""
        core = self._wire(exclude={"extra_fields", "billing", "delivery"})
        core.update(self.billing.wire_fields())
        if self.delivery is not None:
            core.update(self.delivery.wire_fields())
        return self._form(core)


class BrowserForm(BaseModel):
    """A request the customer's browser must make: the library builds it and never sends it.

    Attributes:
        method: The HTTP method of the form.
        url: The absolute NICEPAY URL the form posts to.
        fields: The form fields, every value a string, ``merchantToken`` included.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Literal["POST"] = "POST"
    url: str
    fields: Mapping[str, str]

    def auto_submit_html(self) -> str:
        """A minimal HTML page whose form posts itself on load, every value escaped."""
        inputs = "".join(
            f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
            for name, value in self.fields.items()
        )
        return (
            '<!doctype html><html><body onload="document.forms[0].submit()">'
            f'<form method="{self.method}" action="{html.escape(self.url)}">{inputs}'
            '<noscript><button type="submit">Continue</button></noscript></form></body></html>'
        )


class PaymentStep(BrowserForm):
    """The ``/direct/v2/payment`` step: the same fields as a GET URL and as a POST form.

    Attributes:
        get_url: ``url`` with every field in the query string, ``callBackUrl`` URL-encoded.
        returns_json: ``returnJsonFormat=1`` was requested (ShopeePay): NICEPAY answers with
            JSON (see :class:`ShopeePayRedirect`) instead of an HTML redirect.
    """

    get_url: str
    returns_json: bool = False

    @classmethod
    def build(cls, url: str, fields: Mapping[str, str], *, returns_json: bool) -> PaymentStep:
        """A step for ``url`` whose GET URL carries ``fields`` URL-encoded."""
        query = urlencode(fields)  # quote_plus on every value: callBackUrl arrives intact
        return cls(
            url=url, fields=dict(fields), get_url=f"{url}?{query}", returns_json=returns_json
        )
