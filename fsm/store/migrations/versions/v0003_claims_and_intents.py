"""Add reconciler claims on flow_instance, and call_intent: each provider call before it is sent.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("flow_instance", sa.Column("claimed_by", sa.String(length=64), nullable=True))
    op.add_column(
        "flow_instance", sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_table(
        "call_intent",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("instance_id", sa.String(length=64), nullable=False),
        sa.Column("call", sa.String(length=32), nullable=False),
        sa.Column("reference_no", sa.String(length=64), nullable=True),
        sa.Column("amount", sa.String(length=24), nullable=True),
        sa.Column("tx_id", sa.String(length=64), nullable=True),
        sa.Column("exclusive", sa.Boolean(), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(["instance_id"], ["flow_instance.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_call_intent_instance_id", "call_intent", ["instance_id"])
    op.create_index("ix_call_intent_open", "call_intent", ["finished_at", "recorded_at"])
    open_exclusive = sa.text("exclusive AND finished_at IS NULL")
    op.create_index(
        "ux_call_intent_exclusive_open",
        "call_intent",
        ["instance_id", "call"],
        unique=True,
        sqlite_where=open_exclusive,
        postgresql_where=open_exclusive,
    )


def downgrade() -> None:
    op.drop_index("ux_call_intent_exclusive_open", table_name="call_intent")
    op.drop_index("ix_call_intent_open", table_name="call_intent")
    op.drop_index("ix_call_intent_instance_id", table_name="call_intent")
    op.drop_table("call_intent")
    # Plain ALTER TABLE (SQLite 3.35+ drops columns in place): a batch copy of flow_instance would
    # have to drop a table that transition_log's foreign key still points at.
    op.drop_column("flow_instance", "claimed_until")
    op.drop_column("flow_instance", "claimed_by")
