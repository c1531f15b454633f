"""Retention of the status-check queue: checks done or given up are deleted once their time has
passed (``ewallet-fsm prune-inbound`` runs it beside the inbound journal's); what they did stays
in the call journal and the payments' logs.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, delete, select

from adapters.reconcile.work import STATUS_WORK_TABLE, WorkStatus
from fsm.clock import require_aware
from fsm.store.sql import SqlStore

_W = STATUS_WORK_TABLE

PRUNE_BATCH = 5000
"""Finished checks deleted per transaction by :func:`prune_finished`."""

_FINISHED_BEFORE = (
    select(_W.c.id)
    .where(
        _W.c.status.in_((WorkStatus.DONE.value, WorkStatus.ABANDONED.value)),
        _W.c.finished_at < bindparam("before"),
    )
    .limit(PRUNE_BATCH)
)
_DELETE_FINISHED = delete(_W).where(_W.c.id.in_(_FINISHED_BEFORE.scalar_subquery()))


def prune_finished(store: SqlStore, before: datetime) -> int:
    """Delete the checks done or abandoned before ``before``, a batch per transaction; how
    many went (waiting and running ones are never touched)."""
    cut_off, pruned = {"before": require_aware(before)}, 0
    while True:
        with store.transaction() as conn:
            deleted = int(conn.execute(_DELETE_FINISHED, cut_off).rowcount)
        pruned += deleted
        if deleted < PRUNE_BATCH:
            return pruned


__all__ = ["PRUNE_BATCH", "prune_finished"]
