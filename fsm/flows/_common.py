"""Values shared by several flows: wallet names, their expiry windows, review rules, guards."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from enum import StrEnum
from types import MappingProxyType

from fsm.definition import Actor, GiveUp, Guard, GuardContext, TransitionSpec, transition


class Wallet(StrEnum):
    """E-wallets the flows know; the adapters map each to its NICEPAY ``mitraCd``."""

    OVO = "ovo"
    DANA = "dana"
    LINKAJA = "linkaja"
    SHOPEEPAY = "shopeepay"
    ASTRAPAY = "astrapay"


PAYMENT_ACTORS = (
    Actor.MERCHANT,
    Actor.PROVIDER_RESPONSE,
    Actor.BROWSER_CALLBACK,
    Actor.PROVIDER_NOTIFICATION,
    Actor.STATUS_INQUIRY,
    Actor.TIMER,
    Actor.OPERATOR,
)
"""The actors a payment flow declares: every one the engine knows."""

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

ASTRAPAY_EXPIRY = timedelta(minutes=15)
"""AstraPay documents no expiry (reference §12): we assume NICEPAY's general 15 minutes."""

STATUS_CHECK_CAP = timedelta(hours=1)
"""The longest wait between two status checks of a payment that stays pending."""

REVIEW_GRACE = timedelta(minutes=30)
"""How long past its wallet's window a payment may lack a final status before a person looks."""


def review_after(window: timedelta, event: str, per_wallet: Mapping[Wallet, timedelta]) -> GiveUp:
    """Give up with ``event`` once a payment is its window (per wallet) plus the grace old."""
    return GiveUp(
        window + REVIEW_GRACE, event, {w: delta + REVIEW_GRACE for w, delta in per_wallet.items()}
    )


SETTLEMENTS = MappingProxyType(
    {
        "confirm_payment": "paid",
        "fail_payment": "failed",
        "expire_payment": "expired",
        "void_payment": "voided",
        "refund_payment": "refunded",
    }
)
"""The settling events of both payment flows, which name them and their states alike."""
REFUNDS_BIND = MappingProxyType(
    {"void_payment": ("refunded_amount",), "refund_payment": ("refunded_amount",)}
)
"""What a void or a refund binds besides: the refunded total it reports."""


def review_transitions(
    review: str, flagged_from: Iterable[str], *, binds: tuple[str, ...] = ()
) -> tuple[TransitionSpec, ...]:
    """A payment flow's way into its review state, and out of it only by a settlement.

    The timer or an operator flags a payment (``flag_for_review``); there it is still checked
    (a pending answer keeps it there), and a status inquiry or an operator settles it with one
    of :data:`SETTLEMENTS`.
    """
    return (
        transition("flag_for_review", flagged_from, review, Actor.TIMER, Actor.OPERATOR),
        transition("check_status", review, review, Actor.MERCHANT, Actor.TIMER, Actor.OPERATOR),
        transition("report_pending", review, review, Actor.STATUS_INQUIRY, binds=binds),
        *(
            transition(
                event,
                review,
                dest,
                Actor.STATUS_INQUIRY,
                Actor.OPERATOR,
                binds=binds + REFUNDS_BIND.get(event, ()),
            )
            for event, dest in SETTLEMENTS.items()
        ),
    )


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
