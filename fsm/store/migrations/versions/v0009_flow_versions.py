"""Flow versions: each instance is pinned to a version of its flow, each step names the version.

- ``flow_instance.flow_version``: the version of its flow an instance runs under, fixed when it
  starts and moved only by a recorded migration step.
- ``transition_log.flow_version``: the version whose definition applied the step, so replay
  checks each step against the definition it ran under.

Every existing row ran under the first version of its flow, hence the default of 1. A downgrade
is refused while any row names a later version: the release before this one could not tell the
versions apart and would replay those steps against the wrong definition.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from fsm.errors import ConfigurationError

revision = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None

_TABLES = ("flow_instance", "transition_log")


def upgrade() -> None:
    # A database made from the models without migrations has the columns already; it is stamped
    # at the revision its tables match and upgraded from there.
    inspector = sa.inspect(op.get_bind())
    for table in _TABLES:
        if "flow_version" in {column["name"] for column in inspector.get_columns(table)}:
            continue
        op.add_column(
            table,
            sa.Column("flow_version", sa.Integer(), nullable=False, server_default=sa.text("1")),
        )


def downgrade() -> None:
    for table in _TABLES:
        later = op.get_bind().execute(
            sa.text(f"SELECT COUNT(*) FROM {table} WHERE flow_version > 1")  # noqa: S608
        )
        if later.scalar_one():
            raise ConfigurationError(
                f"{table} holds rows of a flow version after 1: migrate them back first"
            )
    for table in reversed(_TABLES):
        op.drop_column(table, "flow_version")
