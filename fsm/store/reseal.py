"""Sealing hash-only chains with the audit key, once the plain hash chain is found intact.

Rows stored before the audit chain (hash-chained by migration 0010) or while no key was set
carry the plain SHA-256 chain (key id ``sha256``), which anyone can recompute: a key holder's
``verify`` cannot tell them from rows rewritten and hashed again. Whoever holds the key checks
each such chain and, only when every link and the seal are intact and its last hash-only step
is before the cutoff (the moment the key was set), links it again from its first step and seals
it under the signing key, whose id every row then records. A payment in flight when the key was
set has hash-only steps and signed ones after them: the first signed link pins the steps before
it, so it is resealed like a chain hash-only throughout. Every other chain is left as it is: one
already signed throughout is reported so (a second run changes nothing); one tampered, naming a
key not given, or with a hash-only step at or after the cutoff is refused, with the reason.
Each instance is resealed in one transaction that holds its row, so no step is appended
meanwhile.

Resealing vouches for the rows as they are: run it once, right after the key is set, with the
moment it was set as the cutoff, on a database whose hash chains nobody but the service could
have touched. A hash-only row written after that moment was written without the key, which the
service no longer does. Later runs are for the same rows only: a signed chain rewritten whole
as a hash chain cannot be told from one never signed (a checkpoint can tell). A checkpoint taken
before a reseal holds the old links: take a new one after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, select

from fsm.chain.content import LINK_FIELDS, SEAL_FIELDS
from fsm.chain.keys import HASH_ONLY
from fsm.chain.link import Chain
from fsm.chain.verify import ChainedRows, ChainStatus, ChainVerdict, verify_chain
from fsm.clock import as_utc, require_aware
from fsm.errors import ConfigurationError
from fsm.store.sql import SqlStore
from fsm.store.tables import INSTANCE_TABLE, LOG_TABLE

_LOG = LOG_TABLE.c
_INSTANCE = INSTANCE_TABLE.c
_LINKED = len(LINK_FIELDS)
_SEQ = LINK_FIELDS.index("seq")
_TIME = LINK_FIELDS.index("occurred_at")
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


def reseal(store: SqlStore, instance_ids: Iterable[str], *, before: datetime) -> Iterator[Resealed]:
    """Seal each instance's hash-only chain with ``store``'s signing key, one by one.

    Args:
        store: the database, opened with the audit key.
        instance_ids: the instances to reseal.
        before: the cutoff, when the key was set: a chain whose last step is at or after it is
            refused.

    Raises:
        ConfigurationError: ``store`` holds no audit key.
        InvalidInstanceData: ``before`` is naive.
    """
    chain = store.chain
    if chain.keys is None:
        raise ConfigurationError("resealing needs an audit key ($EWALLET_FSM_AUDIT_KEY)")
    cutoff = require_aware(before)
    for instance_id in dict.fromkeys(instance_ids):
        with store.transaction() as conn:
            yield _reseal_one(conn, chain, instance_id, cutoff)


def _reseal_one(conn: Connection, chain: Chain, instance_id: str, cutoff: datetime) -> Resealed:
    # A write first: it holds the row (PostgreSQL) or the database (SQLite) until the end, so
    # the rows checked are the rows rewritten.
    touched = conn.execute(
        INSTANCE_TABLE.update()
        .where(_INSTANCE.id == instance_id)
        .values(chain_key=_INSTANCE.chain_key)
    )
    rows, moved = _rows(conn, instance_id, locked=touched.rowcount > 0)
    verdict = verify_chain(chain, *rows)
    steps, keys = len(rows.step_rows), verdict.key_ids
    if verdict.status is ChainStatus.INTACT and HASH_ONLY not in keys:
        return Resealed(instance_id, Outcome.ALREADY_KEYED, steps, keys[-1])
    refused = _refusal(verdict, chain, moved, cutoff)
    if refused is not None:
        return Resealed(
            instance_id, Outcome.REFUSED, steps, keys[0] if keys else HASH_ONLY, refused
        )
    _relink(conn, chain, rows)
    return Resealed(instance_id, Outcome.RESEALED, steps, chain.key_id)


def _refusal(
    verdict: ChainVerdict, chain: Chain, moved: datetime | None, cutoff: datetime
) -> str | None:
    """Why the chain is not resealed; ``None`` when it is intact and its hash-only rows (all of
    them, or the steps before the key signed the rest) were written before the cutoff."""
    if verdict.status is ChainStatus.TAMPERED:
        return verdict.describe()
    unknown = [key_id for key_id in verdict.key_ids if not chain.can_check(key_id)]
    if unknown:
        return f"rows are signed with key {unknown[0]!r}, not given"
    if moved is None or moved >= cutoff:
        return (
            f"its last hash-only step, at {moved and moved.isoformat()}, is not before the cutoff"
            f" {cutoff.isoformat()}: rows hashed after the key was set were written without it"
        )
    return None


def _rows(
    conn: Connection, instance_id: str, *, locked: bool
) -> tuple[ChainedRows, datetime | None]:
    """The instance's chained rows, and when its last hash-only step was written (else its
    update): a chain begun before the key was set and signed since (payments in flight then)
    is judged by its hash-only steps, which the first signed link pins."""
    log = select(*(_LOG[name] for name in LINK_FIELDS), _LOG.chain_link, _LOG.chain_key)
    steps = [
        tuple(step)
        for step in conn.execute(log.where(_LOG.instance_id == instance_id).order_by(_LOG.seq))
    ]
    instance: tuple[Any, ...] | None = None
    hashed = [step for step in steps if step[-1] == HASH_ONLY]
    moved = hashed[-1][_TIME] if hashed else None
    if locked:
        columns = (*(_INSTANCE[name] for name in SEAL_FIELDS), _INSTANCE.chain_link)
        found = select(*columns, _INSTANCE.chain_seal, _INSTANCE.chain_key, _INSTANCE.updated_at)
        *sealed, updated = conn.execute(found.where(_INSTANCE.id == instance_id)).one()
        instance, moved = tuple(sealed), moved if hashed else updated
    rows = ChainedRows(instance_id, instance, steps)
    return rows, as_utc(moved) if isinstance(moved, datetime) else None


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
