"""Sealing hash-only chains with the audit key, once the plain hash chain is found intact.

Rows stored before the audit chain (hash-chained by migration 0010) or while no key was set
carry the plain SHA-256 chain (key id ``sha256``), which anyone can recompute: a key holder's
``verify`` cannot tell them from rows rewritten and hashed again. Whoever holds the key checks
each such chain and, only when every link and the seal are intact, links it again from its
first step and seals it under the signing key, whose id every row then records. A chain found
tampered, or naming a key not given, is left as it is and reported. Each instance is resealed in
one transaction that holds its row, so no step is appended meanwhile.

Resealing vouches for the rows as they are: run it once, right after the key is set, on a
database whose hash chains nobody but the service could have touched. A checkpoint taken before
a reseal holds the old links: take a new one after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, select

from fsm.chain.content import LINK_FIELDS, SEAL_FIELDS
from fsm.chain.keys import HASH_ONLY
from fsm.chain.link import Chain
from fsm.chain.verify import ChainedRows, ChainStatus, verify_chain
from fsm.errors import ConfigurationError
from fsm.store.sql import SqlStore
from fsm.store.tables import INSTANCE_TABLE, LOG_TABLE

_LOG = LOG_TABLE.c
_INSTANCE = INSTANCE_TABLE.c
_LINKED = len(LINK_FIELDS)
_SEQ = LINK_FIELDS.index("seq")
_SEALED = len(SEAL_FIELDS)


class Outcome(StrEnum):
    """What resealing did to one instance."""

    RESEALED = "resealed"
    ALREADY_KEYED = "already keyed"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Resealed:
    """One instance's reseal: what was done, over how many steps, and why it was refused."""

    instance_id: str
    outcome: Outcome
    steps: int
    key_id: str
    """The key its rows are sealed with now (the one they had when not resealed)."""
    reason: str | None = None


def reseal(store: SqlStore, instance_ids: Iterable[str]) -> Iterator[Resealed]:
    """Seal each instance's hash-only chain with ``store``'s signing key, one by one.

    Raises:
        ConfigurationError: ``store`` holds no audit key.
    """
    chain = store.chain
    if chain.keys is None:
        raise ConfigurationError("resealing needs an audit key ($EWALLET_FSM_AUDIT_KEY)")
    for instance_id in dict.fromkeys(instance_ids):
        with store.transaction() as conn:
            yield _reseal_one(conn, chain, instance_id)


def _reseal_one(conn: Connection, chain: Chain, instance_id: str) -> Resealed:
    # A write first: it holds the row (PostgreSQL) or the database (SQLite) until the end, so
    # the rows checked are the rows rewritten.
    touched = conn.execute(
        INSTANCE_TABLE.update()
        .where(_INSTANCE.id == instance_id)
        .values(chain_key=_INSTANCE.chain_key)
    )
    rows = _rows(conn, instance_id, locked=touched.rowcount > 0)
    verdict = verify_chain(chain, *rows)
    steps, keys = len(rows.step_rows), verdict.key_ids

    def done(outcome: Outcome, key_id: str, reason: str | None = None) -> Resealed:
        return Resealed(instance_id, outcome, steps, key_id, reason)

    if verdict.status is ChainStatus.TAMPERED:
        return done(Outcome.REFUSED, keys[0] if keys else HASH_ONLY, verdict.describe())
    unknown = [key_id for key_id in keys if not chain.can_check(key_id)]
    if unknown:
        return done(
            Outcome.REFUSED, unknown[0], f"rows are signed with key {unknown[0]!r}, not given"
        )
    if HASH_ONLY not in keys:
        return done(Outcome.ALREADY_KEYED, keys[-1])
    _relink(conn, chain, rows)
    return done(Outcome.RESEALED, chain.key_id)


def _rows(conn: Connection, instance_id: str, *, locked: bool) -> ChainedRows:
    log = select(*(_LOG[name] for name in LINK_FIELDS), _LOG.chain_link, _LOG.chain_key)
    steps = conn.execute(log.where(_LOG.instance_id == instance_id).order_by(_LOG.seq)).all()
    instance = None
    if locked:
        columns = (*(_INSTANCE[name] for name in SEAL_FIELDS), _INSTANCE.chain_link)
        found = select(*columns, _INSTANCE.chain_seal, _INSTANCE.chain_key)
        instance = tuple(conn.execute(found.where(_INSTANCE.id == instance_id)).one())
    return ChainedRows(instance_id, instance, [tuple(step) for step in steps])


def _relink(conn: Connection, chain: Chain, rows: ChainedRows) -> None:
    link = ""
    for step in rows.step_rows:
        link = chain.link(link, step[:_LINKED])
        conn.execute(
            LOG_TABLE.update()
            .where(_LOG.instance_id == rows.instance_id, _LOG.seq == step[_SEQ])
            .values(chain_link=link, chain_key=chain.key_id)
        )
    instance: Any = rows.instance_row
    conn.execute(
        INSTANCE_TABLE.update()
        .where(_INSTANCE.id == rows.instance_id)
        .values(
            chain_link=link, chain_seal=chain.seal(link, instance[:_SEALED]), chain_key=chain.key_id
        )
    )


__all__ = ["Outcome", "Resealed", "reseal"]
