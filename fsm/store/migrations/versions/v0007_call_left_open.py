"""When a call left its intent open: ``call_intent.left_open_at``.

A call that moves money holds its payment while it is under way and, when its answer is lost (or
anything fails after the provider accepted it), gives the hold back with its intent open for a
repair. It now stamps the intent as it does, in the same statement that checks the intent is
still open. A repair that read the intent before the stamp learnt nothing of what the call did,
so it may no longer close the intent on the strength of an inquiry made before it.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # A database made from the models without migrations has it already; it is stamped at the
    # revision its tables match and upgraded from there.
    present = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("call_intent")}
    if "left_open_at" not in present:
        op.add_column(
            "call_intent", sa.Column("left_open_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    op.drop_column("call_intent", "left_open_at")
