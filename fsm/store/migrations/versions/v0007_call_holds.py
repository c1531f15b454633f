"""A call's hold and its end on its intent: ``call_intent.held_until`` and ``left_open_at``.

A call that moves money holds its payment while it is under way. Its intent now says until when
(``held_until``, renewed right before the call is sent) and when the call gave its hold back with
no stored answer (``left_open_at``, stamped in the statement that checks the intent is open).
From them a repair knows how late the call may still reach the provider, and whether the call
ended after the repair read its intent: it closes a refund as not taken only once neither can
be.

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

COLUMNS = ("held_until", "left_open_at")


def upgrade() -> None:
    # A database made from the models without migrations has them already; it is stamped at the
    # revision its tables match and upgraded from there.
    present = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("call_intent")}
    for name in COLUMNS:
        if name not in present:
            op.add_column("call_intent", sa.Column(name, sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for name in reversed(COLUMNS):
        op.drop_column("call_intent", name)
