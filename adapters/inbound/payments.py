"""What the inbound handler needs of the payment service it records requests for."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from adapters.inbound.journal import InboundJournal
from adapters.nicepay.client import NicepayClient
from adapters.reconcile.status import StatusChecks
from adapters.reconcile.work import StatusWork
from fsm.definition import Actor
from fsm.model import Instance, TransitionResult
from fsm.store.protocol import Along


class Payments(StatusChecks, Protocol):
    """What the handler needs of the payment service (:class:`~adapters.service.PaymentService`)."""

    @property
    def client(self) -> NicepayClient:
        """The NICEPAY client, whose credentials verify notifications."""
        ...

    @property
    def mandate_fields(self) -> tuple[str, ...]:
        """Where an account link's notification carries the mandate."""
        ...

    @property
    def inbound(self) -> InboundJournal:
        """The journal every inbound request is appended to."""
        ...

    @property
    def status_work(self) -> StatusWork:
        """Where the status checks requests call for are asked of a worker."""
        ...

    def fire(
        self,
        instance_id: str,
        event: str,
        actor: Actor,
        key: str,
        payload: Mapping[str, Any] | None = None,
        along: Along | None = None,
    ) -> TransitionResult | None:
        """Fire ``event``, ``along`` riding with it when applied; a refusal is recorded and
        returns ``None``."""
        ...

    def record_hint(
        self, instance: Instance, event: str, key: str, params: Mapping[str, Any]
    ) -> None:
        """Record an unauthenticated browser return that moves nothing."""
        ...


__all__ = ["Payments"]
