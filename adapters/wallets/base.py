"""What every wallet adapter provides, and the value it hands the merchant's front end.

An adapter knows one wallet's path through NICEPAY: which flow it runs, its ``mitraCd``, and how
the customer is sent on. It does I/O only through the service's
:class:`~adapters.nicepay.NicepayClient` and reports what it learns as flow events; it never writes
a state itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from adapters.service import PaymentOrder, PaymentService
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


class WalletAdapter(Protocol):
    """One wallet's way through NICEPAY."""

    @property
    def wallet(self) -> str:
        """The wallet it serves."""
        ...

    @property
    def mitra_cd(self) -> str:
        """NICEPAY's partner code for the wallet."""
        ...

    @property
    def flow(self) -> str:
        """The flow its payments run on."""
        ...

    def begin(
        self, service: PaymentService, payment: Instance, order: PaymentOrder
    ) -> CustomerStep:
        """Send a created payment to NICEPAY and say where the customer goes."""
        ...
