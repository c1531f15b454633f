"""Money edges: keyed provider calls, the refunded total, one live instance per reference.

- ``call_intent.call_key``: a caller's idempotency key for one provider call (a refund request's
  id, an inbound-triggered inquiry's time slot), unique per instance, so a second caller with the
  same key finds the first call instead of sending another.
- ``flow_instance.refunded_amount``: the total the provider confirmed as voided or refunded.
- ``ux_flow_instance_live_reference``: at most one instance per flow and reference that is not
  final. Every non-final state has a deadline (flow validation requires it) and a final one has
  none, so "live" is "has a deadline".

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_KEYED = sa.text("call_key IS NOT NULL")
_LIVE = sa.text("deadline_at IS NOT NULL AND reference_no IS NOT NULL")


def upgrade() -> None:
    op.add_column("call_intent", sa.Column("call_key", sa.String(length=200), nullable=True))
    op.create_index(
        "ux_call_intent_key",
        "call_intent",
        ["instance_id", "call_key"],
        unique=True,
        sqlite_where=_KEYED,
        postgresql_where=_KEYED,
    )
    op.add_column(
        "flow_instance", sa.Column("refunded_amount", sa.String(length=24), nullable=True)
    )
    op.create_index(
        "ux_flow_instance_live_reference",
        "flow_instance",
        ["flow", "reference_no"],
        unique=True,
        sqlite_where=_LIVE,
        postgresql_where=_LIVE,
    )


def downgrade() -> None:
    op.drop_index("ux_flow_instance_live_reference", table_name="flow_instance")
    op.drop_column("flow_instance", "refunded_amount")
    op.drop_index("ux_call_intent_key", table_name="call_intent")
    op.drop_column("call_intent", "call_key")
