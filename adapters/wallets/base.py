"""What every wallet adapter provides, what it is given, and the value it hands the front end.

An adapter knows one wallet's path through NICEPAY: which flow it runs, its ``mitraCd``, how the
customer is sent on, and what NICEPAY's notifications, the browser's returns and the inquiry's
codes mean for its payments. It is handed narrow dependencies, never the engine or the service:
the NICEPAY client and the merchant's URLs (:class:`Gateway`), and the steps of the one payment it
begins (:class:`PaymentSteps`). Everything but :meth:`WalletAdapter.begin` is answered without
I/O, so the inbound handler and the status check dispatch through the registry
(:mod:`adapters.wallets.registry`) and never on a flow's name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from adapters.nicepay.client import Call, NicepayClient
from adapters.wallets.answers import BrowserReturn, NotificationKind, Notified
from adapters.wallets.orders import PaymentOrder
from fsm.definition import Actor
from fsm.model import Instance


class CustomerStep(BaseModel):
    """Where the customer goes next, as data for the merchant's front end."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["redirect", "form", "app_link"]
    """``redirect``: open ``url``; ``form``: submit ``fields`` to ``url``; ``app_link``: jump."""
    method: Literal["GET", "POST"] = "GET"
    url: str
    fields: dict[str, str] = {}
    app_url: str | None = None
    web_url: str | None = None
    note: str = ""


@dataclass(frozen=True)
class Gateway:
    """How an adapter reaches NICEPAY, and where NICEPAY and the browser reach the merchant.

    Attributes:
        client: the NICEPAY client every call goes through.
        notification_url: ``dbProcessUrl``, where NICEPAY posts notifications.
        callback_url: ``callBackUrl``, where the customer's browser comes back.
        reference_suffix: makes the suffix of a replacement ``referenceNo`` when a
            registration's answer was lost (:mod:`adapters.wallets.registration`).
    """

    client: NicepayClient
    notification_url: str
    callback_url: str
    reference_suffix: Callable[[], str]


class PaymentSteps(Protocol):
    """The steps of the one payment an adapter begins, and the record of its NICEPAY calls."""

    def fire(
        self, event: str, *, actor: Actor, key: str, payload: Mapping[str, Any] | None = None
    ) -> bool:
        """Apply one step of the payment's flow.

        Returns:
            ``False`` when a step under ``key`` was applied before (nothing new happened).

        Raises:
            TransitionNotAllowed: the flow refused the step, which is recorded.
        """
        ...

    def report(
        self, event: str, *, actor: Actor, key: str, payload: Mapping[str, Any] | None = None
    ) -> None:
        """Apply a step if the flow still takes it; a refusal is recorded, not raised."""
        ...

    def recorded_call(
        self, call: Call, *, request: Mapping[str, Any], tx_id: str | None = None
    ) -> AbstractContextManager[object]:
        """Record the intent of a NICEPAY call around the block that sends it and fires its
        answer (see :func:`adapters.reconcile.intents.recorded_call`)."""
        ...


class FlowAdapter(Protocol):
    """What an adapter answers about the instances of its flow, without I/O."""

    @property
    def wallet(self) -> str:
        """The wallet it serves."""
        ...

    @property
    def flow(self) -> str:
        """The flow its instances run on."""
        ...

    @property
    def notification_kind(self) -> NotificationKind:
        """Which of NICEPAY's notifications its instances receive, and so how one is verified."""
        ...

    def on_notification(
        self,
        instance: Instance,
        params: Mapping[str, str],
        *,
        imid: str,
        mandate_fields: Sequence[str],
    ) -> Notified:
        """What a verified notification about ``instance`` means.

        Args:
            instance: the payment or link it names.
            params: its parameters, as received.
            imid: the merchant's ``iMid``, which its token signed.
            mandate_fields: where an account link's notification carries the mandate.
        """
        ...

    def on_return(self, instance: Instance) -> BrowserReturn:
        """What the customer's browser coming back means for ``instance``."""
        ...

    def inquiry_event(self, status: str, state: str) -> str | None:
        """The event an inquiry's ``status`` fires in ``state``; ``None`` for an unknown code."""
        ...


class WalletAdapter(FlowAdapter, Protocol):
    """One wallet's way through NICEPAY: beginning its payments, and what happens to them."""

    @property
    def mitra_cd(self) -> str:
        """NICEPAY's partner code for the wallet."""
        ...

    def begin(
        self, payment: Instance, order: PaymentOrder, gateway: Gateway, steps: PaymentSteps
    ) -> CustomerStep:
        """Send a created payment to NICEPAY and say where the customer goes."""
        ...


__all__ = ["CustomerStep", "FlowAdapter", "Gateway", "PaymentSteps", "WalletAdapter"]
