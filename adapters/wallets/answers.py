"""What a notification, a browser return or an inquiry's code means for an instance.

The inbound handler verifies a request and finds its instance; the instance's adapter answers
what the request means (:class:`Notified`, :class:`BrowserReturn`), and the handler fires that.
The status check asks the adapter which event an inquiry's code fires. Nothing here does I/O;
:class:`PaymentAnswers` gives the answers every payment adapter shares.

NICEPAY sends two kinds of notification (:class:`NotificationKind`). A payment's names its
``tXid`` and carries T3, which covers only ``iMid + tXid + amt``: it proves the sender knows the
merchant key, never the status, so an inquiry decides what it meant. An account link's names no
``tXid`` and carries T4; no inquiry exists for a link, so its status decides.

A sender may add, drop or vary any parameter its token does not cover. A key built from such a
parameter would let every variation through as a new event, each a transition and an inquiry.
So a payment notification is keyed on what T3 verified (``iMid``, ``tXid``, the amount) and its
``status`` reduced to the two codes NICEPAY documents (§6.4); an account-link notification on
what T4 verified (``iMid``, ``referenceNo``, ``billingPhone``), its status, and whether it
carries a mandate (which decides its event).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from adapters.wallets.status_codes import event_for_status
from fsm.flows import PaymentEvent
from fsm.model import Instance

_NOTIFIED_STATUS = {"0": "deposit", "1": "reversal"}
REVERSAL = "reversal"


class NotificationKind(StrEnum):
    """The two notifications NICEPAY sends, told apart by what their token signs."""

    TRANSACTION = "transaction"
    """Names its ``tXid``, signed with T3 (``iMid + tXid + amt``); an inquiry decides."""
    ACCOUNT_LINK = "account_link"
    """Names no ``tXid``, signed with T4 (``iMid + referenceNo + billingPhone``); its status
    decides."""


@dataclass(frozen=True)
class Notified:
    """What a verified notification means for its instance.

    Attributes:
        event: the event to fire, as the notification's sender.
        key: its idempotency key, from what the token verified only.
        binds: payload fields the event binds (a ``tx_id``, a ``mandate``).
        inquire: whether an inquiry decides what it meant (a payment's), rather than the
            notification itself (an account link's).
        claims_reversal: it says the payment was voided or refunded: worth an inquiry even
            once the payment has settled, where a replayed deposit can reveal nothing new.
    """

    event: str
    key: str
    binds: Mapping[str, str] = field(default_factory=dict)
    inquire: bool = True
    claims_reversal: bool = False


@dataclass(frozen=True)
class BrowserReturn:
    """What the customer's browser coming back (``callBackUrl``) means for its instance.

    Attributes:
        event: the event to fire (or, for a hint, to record) as the browser.
        checks_status: whether the return is fired and a status check asked; otherwise it is
            only recorded as a hint for an operator and moves nothing.
        keeps_tx_id_hint: whether a ``tXid`` the return names is kept, once, even when the
            return itself moves nothing: the payment may learn its ``tXid`` only from a return.
    """

    event: str
    checks_status: bool = True
    keeps_tx_id_hint: bool = False


def transaction_notification(
    event: str, params: Mapping[str, str], *, imid: str, amount: str
) -> Notified:
    """A verified payment notification: ``event``, keyed on T3's values and its status."""
    tx_id = params["tXid"]
    key = f"notification:{imid}:{key_part(tx_id)}:{amount}:{notified_status(params)}"
    reversal = notified_status(params) == REVERSAL
    return Notified(event, key, binds={"tx_id": tx_id}, claims_reversal=reversal)


class PaymentAnswers:
    """What every payment adapter answers: a payment's notification is recorded and an inquiry
    decides it; a return is recorded and a status check asked; the reference's inquiry table,
    with the wallet's documented exceptions, maps a code to its event."""

    wallet: ClassVar[str]
    notification_kind: ClassVar[NotificationKind] = NotificationKind.TRANSACTION
    notification_event: ClassVar[str] = PaymentEvent.RECEIVE_NOTIFICATION
    """The event a verified notification is recorded as."""
    return_event: ClassVar[str]
    keeps_tx_id_hint: ClassVar[bool] = False
    """Whether a browser return may be where the server first hears the payment's tXid."""

    def on_notification(
        self,
        instance: Instance,
        params: Mapping[str, str],
        *,
        imid: str,
        mandate_fields: Sequence[str],
    ) -> Notified:
        """A verified notification: recorded, and an inquiry decides what it meant."""
        amount = instance.amount or ""
        return transaction_notification(self.notification_event, params, imid=imid, amount=amount)

    def on_return(self, instance: Instance) -> BrowserReturn:
        """Back from the wallet: recorded, then a status check decides."""
        return BrowserReturn(self.return_event, keeps_tx_id_hint=self.keeps_tx_id_hint)

    def inquiry_event(self, status: str, state: str) -> str | None:
        """The event of the reference's inquiry table, with the wallet's exceptions."""
        return event_for_status(self.wallet, status, current_state=state)


def link_notification_key(imid: str, params: Mapping[str, str], *, with_mandate: bool) -> str:
    """The key of a verified account-link notification (T4's values, status, mandate or not)."""
    signed = f"{params.get('referenceNo', '')}:{params.get('billingPhone', '')}"
    status = "failed" if params.get("status", "0") != "0" else "linked"
    return f"link-notification:{imid}:{key_part(signed)}:{status}:{int(with_mandate)}"


def notified_status(params: Mapping[str, str]) -> str:
    """A notification's ``status`` as ``deposit``, ``reversal`` or ``other``."""
    return _NOTIFIED_STATUS.get(params.get("status", "").strip(), "other")


def key_part(value: str) -> str:
    """``value`` for an idempotency key: itself when short and printable, else its digest."""
    if len(value) <= 64 and value.isprintable():
        return value
    return "sha256-" + hashlib.sha256(value.encode("utf-8", "backslashreplace")).hexdigest()[:16]


__all__ = [
    "REVERSAL",
    "BrowserReturn",
    "NotificationKind",
    "Notified",
    "PaymentAnswers",
    "key_part",
    "link_notification_key",
    "notified_status",
    "transaction_notification",
]
