"""The audit chain: a link on every log row, a seal on every instance row (:mod:`fsm.chain`).

``transition_log.chain_link`` and ``chain_key``; ``flow_instance.chain_link``, ``chain_seal``
and ``chain_key``. The rows already stored (of every instance without a seal) are chained here,
in log order, as the plain SHA-256 hash chain (key id ``sha256``): the migration has no audit
key, and a row left without a link would read as tampered. Rows the service writes from now on
are keyed when it holds a key. Downgrading drops the columns.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import groupby

import sqlalchemy as sa
from alembic import op

from fsm.chain.content import LINK_FIELDS, SEAL_FIELDS
from fsm.chain.link import Chain
from fsm.store.tables import UtcDateTime

revision = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None

_TIMES = frozenset({"occurred_at"})
_LOG = sa.table(
    "transition_log",
    *(sa.column(name, UtcDateTime() if name in _TIMES else None) for name in LINK_FIELDS),
    sa.column("chain_link"),
    sa.column("chain_key"),
)
_INSTANCE = sa.table(
    "flow_instance",
    *(sa.column(name) for name in SEAL_FIELDS),
    sa.column("chain_link"),
    sa.column("chain_seal"),
    sa.column("chain_key"),
)
_LINK = sa.String(length=64)
_KEY = sa.String(length=32)


_COLUMNS = (
    ("transition_log", "chain_link", _LINK),
    ("transition_log", "chain_key", _KEY),
    ("flow_instance", "chain_link", _LINK),
    ("flow_instance", "chain_seal", _LINK),
    ("flow_instance", "chain_key", _KEY),
)


def upgrade() -> None:
    conn = op.get_bind()
    inspector = sa.inspect(conn)
    present = {
        table: {column["name"] for column in inspector.get_columns(table)}
        for table in ("transition_log", "flow_instance")
    }
    for table, name, kind in _COLUMNS:
        # A database made from the models without migrations has them already; it is stamped
        # at the revision its tables match and upgraded from there.
        if name not in present[table]:
            op.add_column(table, sa.Column(name, kind, nullable=True))
    _chain_stored_rows(conn)


def downgrade() -> None:
    for table, name, _kind in reversed(_COLUMNS):
        op.drop_column(table, name)


def _chain_stored_rows(conn: sa.Connection) -> None:
    chain = Chain()
    unsealed = _INSTANCE.c.chain_seal.is_(None)
    rows = conn.execute(sa.select(*(_INSTANCE.c[name] for name in SEAL_FIELDS)).where(unsealed))
    instances = rows.all()
    latest = dict(_links(conn, chain, [row.id for row in instances]))
    for row in instances:
        link = latest.get(row.id, "")
        conn.execute(
            _INSTANCE.update()
            .where(_INSTANCE.c.id == row.id)
            .values(
                chain_link=link, chain_seal=chain.seal(link, tuple(row)), chain_key=chain.key_id
            )
        )


def _links(conn: sa.Connection, chain: Chain, instance_ids: list[str]) -> Iterator[tuple[str, str]]:
    """Link every stored step of the instances; the last link of each."""
    columns = [_LOG.c[name] for name in LINK_FIELDS]
    query = sa.select(*columns).order_by(_LOG.c.instance_id, _LOG.c.seq)
    wanted = set(instance_ids)
    rows = [row for row in conn.execute(query) if row.instance_id in wanted]
    for instance_id, steps in groupby(rows, key=lambda row: row.instance_id):
        link = ""
        for step in steps:
            link = chain.link(link, tuple(step))
            conn.execute(
                _LOG.update()
                .where(_LOG.c.instance_id == instance_id, _LOG.c.seq == step.seq)
                .values(chain_link=link, chain_key=chain.key_id)
            )
        yield instance_id, link
