"""Add inbound_attempt: every request to an inbound endpoint, refused or accepted.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "inbound_attempt",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("endpoint", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("instance_id", sa.String(length=64), nullable=True),
        sa.Column("parameters", sa.Text(), nullable=False),
        sa.Column("body_bytes", sa.Integer(), nullable=False),
        sa.Column("client_ip", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_inbound_attempt_received_at", "inbound_attempt", ["received_at"])
    op.create_index("ix_inbound_attempt_instance_id", "inbound_attempt", ["instance_id"])


def downgrade() -> None:
    op.drop_index("ix_inbound_attempt_instance_id", table_name="inbound_attempt")
    op.drop_index("ix_inbound_attempt_received_at", table_name="inbound_attempt")
    op.drop_table("inbound_attempt")
