"""The engine's values: a stored instance, one log record, one refused event, a fire's result.

All are frozen: the database holds the truth, and these are snapshots of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fsm.errors import RejectReason


@dataclass(frozen=True, slots=True)
class Instance:
    """One flow instance (a payment, an account link) as stored."""

    id: str
    flow: str
    state: str
    version: int
    """How many transitions have been applied; the compare-and-set token."""
    wallet: str | None
    amount: str | None
    """Exact amount in minor units as a digit string (IDR has none: whole rupiah)."""
    currency: str
    reference_no: str | None
    tx_id: str | None
    mandate: str | None
    deadline_at: datetime | None
    created_at: datetime
    updated_at: datetime
    refunded_amount: str | None = None
    """The total the provider confirmed as voided or refunded so far, a digit string; bound by
    the void and refund transitions (a late field, so positional rows keep their order)."""
    flow_version: int = 1
    """The version of the flow the instance runs under: pinned at start, moved only by a
    recorded migration step (:meth:`fsm.Engine.migrate`)."""

    def advanced(
        self, record: TransitionRecord, deadline_at: datetime | None, bound: Mapping[str, str]
    ) -> Instance:
        """The instance once ``record`` is applied: its state, version and deadline, and the
        fields the step binds (``bound``, names from ``BINDABLE_FIELDS``) set."""
        get = bound.get
        return Instance(
            self.id,
            self.flow,
            record.dest,
            record.seq,
            self.wallet,
            self.amount,
            self.currency,
            get("reference_no", self.reference_no),
            get("tx_id", self.tx_id),
            get("mandate", self.mandate),
            deadline_at,
            self.created_at,
            record.occurred_at,
            get("refunded_amount", self.refunded_amount),
            record.flow_version,
        )


@dataclass(frozen=True, slots=True)
class TransitionRecord:
    """One applied transition, as appended to the log."""

    instance_id: str
    seq: int
    """The instance's version after this step: 1, 2, 3, ..."""
    event: str
    source: str
    dest: str
    actor: str
    idempotency_key: str
    payload: Mapping[str, Any]
    occurred_at: datetime
    fingerprint: str
    """Fingerprint of the flow definition that applied the step."""
    flow_version: int = 1
    """The version of the flow that applied the step (a migration step: the version it moved to)."""


@dataclass(frozen=True, slots=True)
class RejectedEvent:
    """An event that was recorded and not applied, with the reason."""

    instance_id: str
    event: str
    state: str
    version: int
    actor: str
    idempotency_key: str
    reason: RejectReason
    detail: str
    payload: Mapping[str, Any]
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class TransitionResult:
    """What :meth:`fsm.Engine.fire` did, and the instance it left.

    ``duplicate`` is true when the idempotency key had already been applied: ``record`` is then
    the first outcome, nothing new was applied, and ``instance`` is the instance as it stands.
    """

    record: TransitionRecord
    instance: Instance
    """The instance once the event was handled, as stored: no need to read it again."""
    duplicate: bool = False

    @property
    def state(self) -> str:
        """The instance's state after the transition."""
        return self.record.dest

    @property
    def applied(self) -> bool:
        """Whether this call applied a new transition."""
        return not self.duplicate


@dataclass(frozen=True, slots=True)
class MigratedInstance:
    """One instance :meth:`fsm.Engine.migrate` moved (or, in a dry run, would move)."""

    instance_id: str
    source: str
    """Its state under the old version."""
    dest: str
    """Its state under the new version, as the migration's map says."""
    from_version: int
    to_version: int
    record: TransitionRecord | None
    """The logged migration step; ``None`` in a dry run."""


@dataclass(frozen=True, slots=True)
class FireRequest:
    """One event for :meth:`fsm.Engine.fire_many`: what :meth:`fsm.Engine.fire` takes."""

    instance_id: str
    event: str
    actor: str
    idempotency_key: str
    payload: Mapping[str, Any] | None = None
