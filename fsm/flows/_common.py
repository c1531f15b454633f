"""Values shared by several flows: wallet names, their expiry windows, and the guards."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from enum import StrEnum
from types import MappingProxyType

from fsm.definition import Actor, Guard, GuardContext, TransitionSpec, transition


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


def refund_requests(event: str, states: Iterable[str]) -> tuple[TransitionSpec, ...]:
    """``event`` as a self-loop on each of ``states``, fired by the merchant or an operator.

    The request only records who asked for how much and why (its payload); the money moves
    when a status inquiry reports the void or refund.
    """
    return tuple(
        transition(
            event,
            state,
            state,
            Actor.MERCHANT,
            Actor.OPERATOR,
            description="a refund requested: amount, request id, reason, requested by",
        )
        for state in states
    )


GUARDS = MappingProxyType(
    {guard.name: guard for guard in (PUSH_WALLET, REDIRECT_WALLET, HAS_MANDATE)}
)
"""Guards by name, for definitions loaded from JSON."""
