"""What the merchant knows about a checkout or an account link, before anything is sent.

A payment's order is validated when it is made (an exact amount, a cart that adds up to it,
sizes NICEPAY accepts); the wallet adapters turn orders into NICEPAY's requests.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from adapters.nicepay.messages import Billing, CartItem, amount_string
from fsm.flows import Wallet


class PaymentOrder(BaseModel):
    """What the merchant knows about one checkout, checked before anything is stored or sent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    wallet: Wallet
    reference_no: str = Field(min_length=1, max_length=40)
    amount: str
    goods_name: str = Field(min_length=1, max_length=100)
    billing: Billing
    cart: tuple[CartItem, ...] = Field(min_length=1)
    user_ip: str = Field(min_length=1, max_length=15)
    description: str = Field("", max_length=100)
    link_id: str | None = None
    """AstraPay: the id of the customer's linked account (an ``astrapay_link`` instance)."""

    @field_validator("amount", mode="before")
    @classmethod
    def _exact_amount(cls, value: object) -> str:
        return amount_string(value)  # type: ignore[arg-type]  # refuses what is not digits

    @model_validator(mode="after")
    def _cart_adds_up(self) -> PaymentOrder:
        total = sum(item.line_total for item in self.cart)
        if total != int(self.amount):
            raise ValueError(f"cart items add up to {total}, not the amount {self.amount}")
        return self


class LinkOrder(BaseModel):
    """What the merchant knows when a customer links an AstraPay account."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reference_no: str
    billing_name: str
    billing_phone: str
    billing_email: str
    user_ip: str


__all__ = ["LinkOrder", "PaymentOrder"]
