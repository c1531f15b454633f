"""What an applied transition tells the rest of a service: the event, with a stable schema.

An engine built with ``event_types`` (for the payment flows :data:`fsm.flows.EVENT_TYPES`) writes
an :class:`Event` for each applied transition that enters a state with a type (see
:func:`event_of`), in the transaction
that applies it: an event is stored if and only if its transition committed. A relay
(``adapters.events``) delivers the stored events at least once, so a consumer deduplicates by
:attr:`Event.id`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from fsm.clock import require_aware
from fsm.definition import MIGRATE_EVENT
from fsm.errors import InvalidInstanceData
from fsm.model import Instance, TransitionRecord

EventTypes = Mapping[str, Mapping[str, str]]
"""Event types by flow name, then by target state, e.g. ``{"ewallet_payment": {"paid":
"payment.paid"}}``."""

SCHEMA_VERSION = 2
"""The version of :class:`Event`'s fields; a field is only ever added under a new version
(2 added ``refunded_amount`` and ``flow_version``)."""


@dataclass(frozen=True)
class Event:
    """One applied transition, as a consumer outside the library sees it.

    Amounts are exact strings of minor units; times are aware (UTC).
    """

    id: str
    """A fresh UUID: the same event delivered twice carries the same id."""
    type: str
    """E.g. ``payment.paid``."""
    flow: str
    payment_id: str
    """The instance's id (a payment's, or an account link's)."""
    reference: str | None
    amount: str | None
    currency: str
    wallet: str | None
    state: str
    """The state the transition entered."""
    previous_state: str
    transition: str
    """The event the engine applied."""
    version: int
    """The instance's version after the transition: events of one payment are ordered by it."""
    occurred_at: datetime
    schema: int = SCHEMA_VERSION
    refunded_amount: str | None = None
    """The payment's refunded total after the transition (a partial refund says how much)."""
    flow_version: int = 1
    """The flow version the instance runs under."""

    def as_dict(self) -> dict[str, Any]:
        """The event as JSON-ready data (the time as ISO 8601 with its offset)."""
        data = asdict(self)
        data["occurred_at"] = self.occurred_at.isoformat()
        return data

    def to_json(self) -> str:
        """The event as compact JSON text, keys sorted."""
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Event:
        """The event :meth:`to_json` wrote; fields a later schema version added are left out.

        Raises:
            InvalidInstanceData: the text is not such an event.
        """
        try:
            data = json.loads(text)
            data["occurred_at"] = require_aware(datetime.fromisoformat(data["occurred_at"]))
            known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
            return cls(**known)
        except (ValueError, TypeError, KeyError) as error:
            raise InvalidInstanceData(f"not an event: {error}") from None


def event_of(
    types: EventTypes, before: Instance, moved: Instance, record: TransitionRecord
) -> Event | None:
    """The event ``record`` emits under ``types``, taking ``before`` to ``moved``.

    Only a step that enters its state emits, or one that stays there with a new refunded total
    (a second partial refund): a refund request, a status check that changes nothing, or a move
    to another flow version tells a consumer nothing new, and a repeated ``payment.paid`` would
    look like a second payment to one that deduplicates by event id.
    """
    kind = types.get(moved.flow, {}).get(record.dest)
    entered = record.dest != record.source
    refunded = moved.refunded_amount != before.refunded_amount
    if kind is None or record.event == MIGRATE_EVENT or not (entered or refunded):
        return None
    return Event(
        id=str(uuid.uuid4()),
        type=kind,
        flow=moved.flow,
        payment_id=moved.id,
        reference=moved.reference_no,
        amount=moved.amount,
        currency=moved.currency,
        wallet=moved.wallet,
        state=record.dest,
        previous_state=record.source,
        transition=record.event,
        version=record.seq,
        occurred_at=record.occurred_at,
        refunded_amount=moved.refunded_amount,
        flow_version=moved.flow_version,
    )


__all__ = ["SCHEMA_VERSION", "Event", "EventTypes", "event_of"]
