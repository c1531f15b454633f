"""When the oldest unfinished instance in each state started: what the oldest-age gauge reads.

An unfinished instance is one with a deadline (every non-final state has one, final states
never do), so the SQL store answers from the deadline's index, over in-flight instances only,
in one grouped query however many finished instances the table holds.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from fsm.store.memory import MemoryStore
from fsm.store.protocol import Store
from fsm.store.sql import SqlStore
from fsm.store.tables import INSTANCE_TABLE

_I = INSTANCE_TABLE
_OLDEST = (
    select(_I.c.flow, _I.c.state, func.min(_I.c.created_at))
    .where(_I.c.deadline_at.is_not(None))
    .group_by(_I.c.flow, _I.c.state)
)


def oldest_unfinished(store: Store) -> dict[tuple[str, str], datetime]:
    """The start of the oldest unfinished instance, by flow and state (those with none are left
    out); empty for a store of a kind it cannot read."""
    if isinstance(store, SqlStore):
        with store.connection() as conn:
            return {(flow, state): started for flow, state, started in conn.execute(_OLDEST)}
    if isinstance(store, MemoryStore):
        oldest: dict[tuple[str, str], datetime] = {}
        for instance in store.list_instances(limit=len(store.instance_ids())):  # oldest first
            if instance.deadline_at is not None:
                oldest.setdefault((instance.flow, instance.state), instance.created_at)
        return oldest
    return {}


__all__ = ["oldest_unfinished"]
