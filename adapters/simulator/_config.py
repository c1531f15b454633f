"""The simulator's settings: credentials, switches for unconfirmed points, expiry, cancel rules.

Every default follows the protocol reference; every rule the reference marks as unconfirmed or
per-merchant is a field here, so a test can pin the behaviour it depends on.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import time, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, SkipValidation

from fsm.clock import Clock, SystemClock
from fsm.flows import Wallet
from fsm.flows._common import ASTRAPAY_EXPIRY, WALLET_EXPIRY


class CustomerAction(StrEnum):
    """What a scripted customer does when the wallet asks for the payment (or the link)."""

    PAY = "pay"
    """Log in and pay (OVO: approve the push; AstraPay link: authorise the link)."""
    DECLINE = "decline"
    """Refuse on the wallet's page or in the app: the transaction fails."""
    ABANDON = "abandon"
    """Close the page or ignore the push: the transaction expires."""

    @classmethod
    def parse(cls, value: CustomerAction | str) -> CustomerAction:
        """``value`` as an action; ``approve`` and ``ignore`` are accepted as aliases."""
        aliases = {"approve": cls.PAY, "ignore": cls.ABANDON}
        text = str(value).lower()
        return aliases.get(text) or cls(text)


class CancelRule(BaseModel):
    """One wallet's cancel rules; ages count from the payment, days from the WIB calendar."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    void_same_day: bool = False
    """A full cancel voids only on the WIB day of payment (OVO)."""
    void_within: timedelta | None = None
    """A full cancel voids while the payment is younger than this."""
    refund_within: timedelta | None = None
    """After the void window, a full cancel becomes an online refund while younger than this."""
    partial_within: timedelta | None = None
    """A partial cancel is an online refund while younger than this; ``None`` blocks it."""
    blackout: tuple[time, time] | None = None
    """A WIB time window in which every cancel request is refused (DANA: 00:00-01:00)."""


_NINETY_DAYS = timedelta(days=90)
DEFAULT_CANCEL_RULES: Mapping[Wallet, CancelRule] = {
    Wallet.OVO: CancelRule(void_same_day=True),
    Wallet.DANA: CancelRule(
        void_within=timedelta(hours=24),
        refund_within=timedelta(days=30),
        partial_within=timedelta(days=30),
        blackout=(time(0, 0), time(1, 0)),
    ),
    Wallet.LINKAJA: CancelRule(void_within=timedelta(days=30)),
    # ShopeePay's and AstraPay's rules are undocumented: allow what the general API allows.
    Wallet.SHOPEEPAY: CancelRule(void_within=_NINETY_DAYS, partial_within=_NINETY_DAYS),
    Wallet.ASTRAPAY: CancelRule(void_within=_NINETY_DAYS, partial_within=_NINETY_DAYS),
}


def _has_now(clock: Any) -> Any:
    if not callable(getattr(clock, "now", None)):
        raise ValueError("clock must have a now() method returning an aware datetime")
    return clock


class SimulatorConfig(BaseModel):
    """How the simulated NICEPAY behaves; only ``imid`` and ``merchant_key`` are required."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    imid: str = Field(pattern=r"^[A-Za-z0-9]{10}$")
    merchant_key: SecretStr
    duplicate_reference_check: bool = True
    """Refuse a second registration with a known ``referenceNo`` (9009); a merchant setting."""
    notification_format: Literal["form", "json"] = "form"
    callback_method: Literal["get", "post"] = "get"
    """Return the browser to ``callBackUrl`` by a redirect (query) or an auto-submitting form."""
    expiry: dict[Wallet, timedelta] = Field(default_factory=dict)
    """Explicit expiry windows per wallet; they win over ``expiry_scale``."""
    expiry_scale: float = Field(default=1.0, gt=0)
    """Multiplies the default windows (OVO 55 s, LinkAja and ShopeePay 5 min, DANA 24 h)."""
    allow_unpaid_cancel: bool = False
    """Whether an unpaid transaction may be cancelled (voided); unconfirmed at NICEPAY."""
    cancel_rules: dict[Wallet, CancelRule] = Field(default_factory=dict)
    """Per-wallet overrides of :data:`DEFAULT_CANCEL_RULES`."""
    max_cancel_age: timedelta = _NINETY_DAYS
    mandate_field: str = Field(default="mandateID", min_length=1)
    mandate_in: Literal["notification", "callback", "both"] = "both"
    astrapay_refund_status: Literal["2", "8"] = "2"
    """The inquiry code of an AstraPay refund: the general table's ``2`` or AstraPay's ``8``."""
    notify_reversals: bool = True
    """Send a notification with ``status`` 1 after a void or refund."""
    ovo_default_action: CustomerAction = CustomerAction.ABANDON
    """What an unscripted OVO customer does with the push."""
    notification_timeout: float = Field(default=5.0, gt=0)
    reorder_gap: float = Field(default=0.2, ge=0)
    """How long a reordered notification trails the event it was held behind."""
    reorder_max_hold: float = Field(default=5.0, ge=0)
    timeout_hold: float = Field(default=30.0, ge=0)
    """How long a ``timeout`` fault keeps the request open (or until the client gives up)."""
    sweep_interval: float = Field(default=0.05, gt=0)
    db_url: str | None = None
    """SQLAlchemy URL of the simulator's own engine; a SQLite file in a temp dir by default."""
    clock: Annotated[SkipValidation[Clock], AfterValidator(_has_now)] = Field(
        default_factory=SystemClock
    )

    def expiry_for(self, wallet: Wallet) -> timedelta:
        """The window the customer has to pay with ``wallet``."""
        if wallet in self.expiry:
            return self.expiry[wallet]
        return WALLET_EXPIRY.get(wallet, ASTRAPAY_EXPIRY) * self.expiry_scale

    def cancel_rule(self, wallet: Wallet) -> CancelRule:
        """The cancel rules that apply to ``wallet``."""
        return self.cancel_rules.get(wallet, DEFAULT_CANCEL_RULES[wallet])
