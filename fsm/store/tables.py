"""The engine's tables as sqlmodel tables, and the timestamp type that keeps stored times aware.

The Alembic revisions (:mod:`fsm.store.migrations`) create exactly these tables, and beside them
the tables the adapters declare on the same sqlmodel metadata for their journals (the provider
calls, the inbound requests); a test compares them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Dialect, Index, Text, TypeDecorator, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from fsm.clock import as_utc, require_aware
from fsm.model import Instance


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that refuses naive datetimes and always reads back as aware UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment = require_aware(value)
        return moment.replace(tzinfo=None) if dialect.name == "sqlite" else moment

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return as_utc(value)


def partial_unique_index(name: str, *columns: str, where: str) -> Index:
    """A unique index over the rows ``where`` (SQL) holds, on SQLite and PostgreSQL alike."""
    condition = text(where)
    return Index(name, *columns, unique=True, sqlite_where=condition, postgresql_where=condition)


class FlowInstanceRow(SQLModel, table=True):
    """One flow instance: a payment or an account link."""

    __tablename__ = "flow_instance"
    __table_args__ = (
        # At most one live (not final) instance per flow and reference: a notification that
        # names only the reference must find one payment. Non-final states always have a
        # deadline and final ones never do (the flow checks say so), hence the condition.
        partial_unique_index(
            "ux_flow_instance_live_reference",
            "flow",
            "reference_no",
            where="deadline_at IS NOT NULL AND reference_no IS NOT NULL",
        ),
        # Listings run newest first with a keyset cursor on (created_at, id) (fsm.store.listing).
        Index("ix_flow_instance_created", "created_at", "id"),
        Index("ix_flow_instance_state", "state", "created_at", "id"),
    )

    id: str = Field(primary_key=True, max_length=64)
    flow: str = Field(max_length=64, index=True)
    state: str = Field(max_length=64)
    version: int = 0
    wallet: str | None = Field(default=None, max_length=32)
    amount: str | None = Field(default=None, max_length=24)
    currency: str = Field(default="IDR", max_length=3)
    reference_no: str | None = Field(default=None, max_length=64, index=True)
    tx_id: str | None = Field(default=None, max_length=64, index=True)
    mandate: str | None = Field(default=None, max_length=64)
    deadline_at: datetime | None = Field(default=None, sa_type=UtcDateTime, index=True)
    created_at: datetime = Field(sa_type=UtcDateTime)
    updated_at: datetime = Field(sa_type=UtcDateTime)
    claimed_by: str | None = Field(default=None, max_length=64)
    """The reconciler working on the instance now (:mod:`~fsm.store.leases`), not engine state."""
    claimed_until: datetime | None = Field(default=None, sa_type=UtcDateTime)
    """When that claim lapses, so a crashed reconciler's instances return to the others."""
    refunded_amount: str | None = Field(default=None, max_length=24)
    """The total the provider confirmed as voided or refunded, a digit string."""
    flow_version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    """The flow version the instance is pinned to."""
    chain_link: str | None = Field(default=None, max_length=64)
    """The link of the instance's last step (empty before its first): :mod:`fsm.chain`."""
    chain_seal: str | None = Field(default=None, max_length=64)
    """The MAC over that link and the row's state, version and money fields."""
    chain_key: str | None = Field(default=None, max_length=32)
    """The id of the audit key the seal was made with (``sha256``: none), never the key."""


class TransitionLogRow(SQLModel, table=True):
    """One applied transition. Rows are only ever inserted."""

    __tablename__ = "transition_log"
    __table_args__ = (UniqueConstraint("instance_id", "idempotency_key"),)

    instance_id: str = Field(primary_key=True, foreign_key="flow_instance.id", max_length=64)
    seq: int = Field(primary_key=True)
    event: str = Field(max_length=64)
    source: str = Field(max_length=64)
    dest: str = Field(max_length=64)
    actor: str = Field(max_length=32)
    idempotency_key: str = Field(max_length=200)
    payload: str = Field(sa_type=Text)
    occurred_at: datetime = Field(sa_type=UtcDateTime)
    fingerprint: str = Field(max_length=32)
    flow_version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    """The flow version that applied the step."""
    chain_link: str | None = Field(default=None, max_length=64)
    """The MAC over the previous step's link and this row's content: :mod:`fsm.chain`."""
    chain_key: str | None = Field(default=None, max_length=32)
    """The id of the audit key the link was made with (``sha256``: none), never the key."""


class RejectedEventRow(SQLModel, table=True):
    """One event that was recorded and not applied."""

    __tablename__ = "rejected_event"

    id: int | None = Field(default=None, primary_key=True)
    instance_id: str = Field(max_length=64, index=True)
    event: str = Field(max_length=64)
    state: str = Field(max_length=64)
    version: int
    actor: str = Field(max_length=32)
    idempotency_key: str = Field(max_length=200)
    reason: str = Field(max_length=32)
    detail: str = Field(sa_type=Text)
    payload: str = Field(sa_type=Text)
    occurred_at: datetime = Field(sa_type=UtcDateTime)


class OutboxEventRow(SQLModel, table=True):
    """One event an applied transition emitted (:mod:`fsm.events`), and its delivery.

    Written in the transition's transaction; a relay (``adapters.events``) claims it, delivers it
    and marks it ``delivered``, or ``dead`` after its last attempt.
    """

    __tablename__ = "outbox_event"
    __table_args__ = (
        UniqueConstraint("instance_id", "seq"),
        # The relay's claim: due events oldest first (fsm.store.outbox).
        Index("ix_outbox_event_due", "status", "next_attempt_at"),
    )

    id: str = Field(primary_key=True, max_length=36)
    instance_id: str = Field(max_length=64)
    seq: int
    type: str = Field(max_length=64)
    body: str = Field(sa_type=Text)
    created_at: datetime = Field(sa_type=UtcDateTime)
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_type=UtcDateTime)
    claimed_by: str | None = Field(default=None, max_length=64)
    claimed_until: datetime | None = Field(default=None, sa_type=UtcDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    last_error: str | None = Field(default=None, sa_type=Text)


TABLES = (
    FlowInstanceRow.__table__,  # type: ignore[attr-defined]
    TransitionLogRow.__table__,  # type: ignore[attr-defined]
    RejectedEventRow.__table__,  # type: ignore[attr-defined]
)
"""The engine's tables, in creation order."""

INSTANCE_TABLE, LOG_TABLE, REJECTED_TABLE = TABLES
OUTBOX_TABLE = OutboxEventRow.__table__  # type: ignore[attr-defined]
"""The outbox: kept apart from :data:`TABLES`, which are the first revision's."""
INSTANCE_COLUMNS = tuple(INSTANCE_TABLE.c[name] for name in Instance.__dataclass_fields__)
"""The columns an :class:`~fsm.model.Instance` holds (claims are the reconciler's, not engine
state)."""

__all__ = [
    "INSTANCE_COLUMNS",
    "OUTBOX_TABLE",
    "TABLES",
    "FlowInstanceRow",
    "OutboxEventRow",
    "RejectedEventRow",
    "TransitionLogRow",
    "UtcDateTime",
    "partial_unique_index",
]
