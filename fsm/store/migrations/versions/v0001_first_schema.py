"""The first schema: flow_instance, transition_log and rejected_event.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "flow_instance",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("flow", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("wallet", sa.String(length=32), nullable=True),
        sa.Column("amount", sa.String(length=24), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reference_no", sa.String(length=64), nullable=True),
        sa.Column("tx_id", sa.String(length=64), nullable=True),
        sa.Column("mandate", sa.String(length=64), nullable=True),
        sa.Column("deadline_at", _utc(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("flow", "reference_no", "tx_id", "deadline_at"):
        op.create_index(f"ix_flow_instance_{column}", "flow_instance", [column])
    op.create_table(
        "transition_log",
        sa.Column("instance_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("dest", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=32), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("occurred_at", _utc(), nullable=False),
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("instance_id", "seq"),
        sa.UniqueConstraint("instance_id", "idempotency_key"),
        sa.ForeignKeyConstraint(["instance_id"], ["flow_instance.id"]),
    )
    op.create_table(
        "rejected_event",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("instance_id", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=32), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("occurred_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_rejected_event_instance_id", "rejected_event", ["instance_id"])


def downgrade() -> None:
    op.drop_index("ix_rejected_event_instance_id", table_name="rejected_event")
    op.drop_table("rejected_event")
    op.drop_table("transition_log")
    for column in ("deadline_at", "tx_id", "reference_no", "flow"):
        op.drop_index(f"ix_flow_instance_{column}", table_name="flow_instance")
    op.drop_table("flow_instance")
