"""The audit chain: a link on every log row, a seal on every instance row (:mod:`fsm.chain`).

``transition_log.chain_link`` and ``chain_key``; ``flow_instance.chain_link``, ``chain_seal``
and ``chain_key``. The rows already stored (of every instance without a seal) are chained here,
in log order and a batch of rows at a time, as the plain SHA-256 hash chain (key id
``sha256``): the migration has no audit key, and a row left without a link would read as
tampered. Rows the service writes from now on are keyed when it holds a key. Downgrading drops
the columns.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

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
BATCH = 500
"""Log rows (and instances) read at a time: the log is never held in memory whole."""
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
    for instance_id, link in _links(conn, chain):
        _seal(conn, chain, instance_id, link)
    while unsealed := _unsealed(conn):  # the instances without a step: sealed at no link
        for instance_id in unsealed:
            _seal(conn, chain, instance_id, "")


def _links(conn: sa.Connection, chain: Chain) -> Iterator[tuple[str, str]]:
    """Link every stored step of the unsealed instances, read :data:`BATCH` rows at a time in
    log order; each instance's last link once its steps are linked."""
    current, link = None, ""
    for step in _unsealed_steps(conn):
        if step.instance_id != current:
            if current is not None:
                yield current, link
            current, link = step.instance_id, ""
        link = chain.link(link, tuple(step))
        conn.execute(
            _LOG.update()
            .where(_LOG.c.instance_id == step.instance_id, _LOG.c.seq == step.seq)
            .values(chain_link=link, chain_key=chain.key_id)
        )
    if current is not None:
        yield current, link


def _unsealed_steps(conn: sa.Connection) -> Iterator[sa.Row[Any]]:
    """The steps of every unsealed instance by instance and sequence, one batch per query.

    An instance is sealed only once its last step is read, so the ones still to come stay
    unsealed; the batches follow each other by (instance, sequence).
    """
    unsealed = sa.select(_INSTANCE.c.id).where(_INSTANCE.c.chain_seal.is_(None))
    query = (
        sa.select(*(_LOG.c[name] for name in LINK_FIELDS))
        .where(_LOG.c.instance_id.in_(unsealed))
        .order_by(_LOG.c.instance_id, _LOG.c.seq)
        .limit(BATCH)
    )
    after: tuple[str, int] | None = None
    while True:
        page = query if after is None else query.where(_after(*after))
        rows = conn.execute(page).all()
        yield from rows
        if len(rows) < BATCH:
            return
        after = (rows[-1].instance_id, rows[-1].seq)


def _after(instance_id: str, seq: int) -> sa.ColumnElement[bool]:
    return sa.or_(
        _LOG.c.instance_id > instance_id,
        sa.and_(_LOG.c.instance_id == instance_id, _LOG.c.seq > seq),
    )


def _unsealed(conn: sa.Connection) -> list[str]:
    query = sa.select(_INSTANCE.c.id).where(_INSTANCE.c.chain_seal.is_(None)).limit(BATCH)
    return list(conn.scalars(query))


def _seal(conn: sa.Connection, chain: Chain, instance_id: str, link: str) -> None:
    fields = sa.select(*(_INSTANCE.c[name] for name in SEAL_FIELDS))
    row = conn.execute(fields.where(_INSTANCE.c.id == instance_id)).one()
    conn.execute(
        _INSTANCE.update()
        .where(_INSTANCE.c.id == instance_id)
        .values(chain_link=link, chain_seal=chain.seal(link, tuple(row)), chain_key=chain.key_id)
    )
