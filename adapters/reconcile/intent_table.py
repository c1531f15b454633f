"""The call journal's table: one row per provider call, declared on the engine's metadata so that
the schema's migrations create it with the engine's tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Text
from sqlmodel import Field, SQLModel

from fsm.store.tables import UtcDateTime, partial_unique_index


class CallIntentRow(SQLModel, table=True):
    """One call to the provider, recorded before it is sent and finished once its answer is stored.

    An intent still open long after it was recorded marks a process that stopped between sending
    and storing the answer; the reconciler repairs its instance (:mod:`adapters.reconcile`).
    """

    __tablename__ = "call_intent"
    __table_args__ = (
        Index("ix_call_intent_open", "finished_at", "recorded_at"),
        # The database, not a read before the insert, keeps a second exclusive call (a cancel)
        # out while the first has no stored answer: two racing callers cannot both pass.
        partial_unique_index(
            "ux_call_intent_exclusive_open",
            "instance_id",
            "call",
            where="exclusive AND finished_at IS NULL",
        ),
        # A caller's key for one call (a refund request's id): a second caller with the same
        # key finds the first call instead of sending another, whichever replica it runs on.
        partial_unique_index(
            "ux_call_intent_key", "instance_id", "call_key", where="call_key IS NOT NULL"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    instance_id: str = Field(foreign_key="flow_instance.id", max_length=64, index=True)
    call: str = Field(max_length=32)
    reference_no: str | None = Field(default=None, max_length=64)
    amount: str | None = Field(default=None, max_length=24)
    tx_id: str | None = Field(default=None, max_length=64)
    exclusive: bool = False
    """At most one exclusive call per instance and kind may be open at a time."""
    request: str = Field(sa_type=Text)
    """The identifying fields of what was sent, as JSON with secrets redacted."""
    recorded_at: datetime = Field(sa_type=UtcDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    outcome: str | None = Field(default=None, max_length=32)
    call_key: str | None = Field(default=None, max_length=200)
    """The caller's idempotency key for this call, unique per instance when given."""
    held_until: datetime | None = Field(default=None, sa_type=UtcDateTime)
    """Until when the call holds its instance (:class:`Hold`), as last renewed; none without one."""
    left_open_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    """When the call gave its hold back with no stored answer, leaving the intent to a repair."""


CALL_INTENT_TABLE = CallIntentRow.__table__  # type: ignore[attr-defined]

__all__ = ["CALL_INTENT_TABLE", "CallIntentRow"]
