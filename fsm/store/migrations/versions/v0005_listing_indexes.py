"""Indexes for listing instances newest first, a page at a time, and by state.

- ``ix_flow_instance_created`` on ``(created_at, id)``: the listing's order and its keyset
  cursor, so a page costs the same however deep it is.
- ``ix_flow_instance_state`` on ``(state, created_at, id)``: an operator's ``list --state
  needs_review`` finds the few such instances among millions and pages through them in order.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # A database made from the models without migrations has them already; it is stamped at the
    # revision its tables match and upgraded from there.
    op.create_index(
        "ix_flow_instance_created", "flow_instance", ["created_at", "id"], if_not_exists=True
    )
    op.create_index(
        "ix_flow_instance_state",
        "flow_instance",
        ["state", "created_at", "id"],
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_index("ix_flow_instance_state", table_name="flow_instance")
    op.drop_index("ix_flow_instance_created", table_name="flow_instance")
