"""Values shared by several flows: wallet names, their expiry windows, and the guards."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from types import MappingProxyType

from fsm.definition import Guard, GuardContext


class Wallet(StrEnum):
    """E-wallets the flows know; the adapters map each to its NICEPAY ``mitraCd``."""

    OVO = "ovo"
    DANA = "dana"
    LINKAJA = "linkaja"
    SHOPEEPAY = "shopeepay"
    ASTRAPAY = "astrapay"


REDIRECT_WALLETS = frozenset({Wallet.DANA, Wallet.LINKAJA, Wallet.SHOPEEPAY})

WALLET_EXPIRY = MappingProxyType(
    {
        Wallet.OVO: timedelta(seconds=55),
        Wallet.DANA: timedelta(hours=24),
        Wallet.LINKAJA: timedelta(minutes=5),
        Wallet.SHOPEEPAY: timedelta(minutes=5),
    }
)
"""How long the customer has to pay once the wallet has been reached (NICEPAY's defaults)."""


def _is_push_wallet(ctx: GuardContext) -> bool:
    return ctx.instance.wallet == Wallet.OVO


def _is_redirect_wallet(ctx: GuardContext) -> bool:
    return ctx.instance.wallet in REDIRECT_WALLETS


def _has_mandate(ctx: GuardContext) -> bool:
    return bool(ctx.instance.mandate)


PUSH_WALLET = Guard("push_wallet", _is_push_wallet, "the wallet pushes to its app (OVO)")
REDIRECT_WALLET = Guard(
    "redirect_wallet",
    _is_redirect_wallet,
    "the wallet has a partner page (DANA, LinkAja, ShopeePay)",
)
HAS_MANDATE = Guard("has_mandate", _has_mandate, "the customer's AstraPay account is linked")

GUARDS = MappingProxyType(
    {guard.name: guard for guard in (PUSH_WALLET, REDIRECT_WALLET, HAS_MANDATE)}
)
"""Guards by name, for definitions loaded from JSON."""
