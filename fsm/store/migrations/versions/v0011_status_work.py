"""Add status_work: the status checks inbound requests ask for, run by a worker off the request
path (pending, running under a lease, done or abandoned), at most one pending per instance.

A database the models' ``create_all`` made may have the table already: it is left as it is.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    if "status_work" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "status_work",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("instance_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tx_id_hint", sa.String(length=64), nullable=True),
        sa.Column("call_key", sa.String(length=200), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("trace_parent", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["instance_id"], ["flow_instance.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ux_status_work_pending",
        "status_work",
        ["instance_id"],
        unique=True,
        sqlite_where=sa.text("status = 'pending'"),
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index("ix_status_work_due", "status_work", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_status_work_due", table_name="status_work")
    op.drop_index("ux_status_work_pending", table_name="status_work")
    op.drop_table("status_work")
