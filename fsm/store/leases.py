"""Claims: keep replicas' reconcilers off each other's instances.

A reconciler claims an instance before it acts on it (an inquiry, a timer event, a repair) and
releases it afterwards. A claim is a lease: ``claimed_by`` names the reconciler and
``claimed_until`` ends it, so the instances of a reconciler that crashed return to the others
once the lease runs out, with nothing to clean up.

PostgreSQL claims a batch with ``SELECT ... FOR UPDATE SKIP LOCKED``: concurrent reconcilers
each take different rows and never wait on one another. SQLite has no row locks; there a claim
is a compare-and-set ``UPDATE ... WHERE claimed_until IS NULL OR claimed_until < now`` per row,
and the file's single writer makes it exact: of two reconcilers reaching for one row, the
second finds it claimed.

Claims only order reconcilers. The engine ignores them: a notification may still move a
claimed instance, and the engine's compare-and-set keeps that safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Select, and_, bindparam, or_, select, update

from fsm.clock import require_aware
from fsm.errors import InvalidInstanceData
from fsm.model import Instance
from fsm.store.tables import INSTANCE_COLUMNS, INSTANCE_TABLE

_T = INSTANCE_TABLE
_UNCLAIMED = or_(_T.c.claimed_until.is_(None), _T.c.claimed_until < bindparam("now"))

_CLAIM_ONE = (
    update(_T)
    .where(
        _T.c.id == bindparam("instance_id"), or_(_UNCLAIMED, _T.c.claimed_by == bindparam("owner"))
    )
    .values(claimed_by=bindparam("owner"), claimed_until=bindparam("until"))
)
_CLAIM_AS_READ = (
    update(_T)
    .where(_T.c.id == bindparam("instance_id"), _UNCLAIMED)
    .where(_T.c.version == bindparam("read_version"))
    .values(claimed_by=bindparam("owner"), claimed_until=bindparam("until"))
)
"""A claim that also fails when the instance moved since it was read as due."""
_CLAIM_MANY = (
    update(_T)
    .where(_T.c.id.in_(bindparam("ids", expanding=True)))
    .values(claimed_by=bindparam("owner"), claimed_until=bindparam("until"))
)
_RELEASE = (
    update(_T)
    .where(_T.c.id == bindparam("instance_id"), _T.c.claimed_by == bindparam("owner"))
    .values(claimed_by=None, claimed_until=None)
)


def _due_candidates(limit: int) -> Select[Any]:
    return (
        select(*INSTANCE_COLUMNS)
        .where(and_(_T.c.deadline_at <= bindparam("now"), _UNCLAIMED))
        .order_by(_T.c.deadline_at)
        .limit(limit)
    )


def lease_end(now: datetime, lease: timedelta) -> datetime:
    """When a claim taken at ``now`` lapses.

    Raises:
        InvalidInstanceData: ``now`` is naive or ``lease`` is not positive.
    """
    if lease <= timedelta(0):
        raise InvalidInstanceData(f"a claim's lease must be positive, not {lease}")
    return require_aware(now) + lease


def claim_one(
    conn: Connection, instance_id: str, *, owner: str, now: datetime, until: datetime
) -> bool:
    """Claim one instance, or renew ``owner``'s own claim, unless another reconciler holds it.

    True when ``owner`` holds it now.
    """
    values = {"instance_id": instance_id, "owner": owner, "now": now, "until": until}
    return conn.execute(_CLAIM_ONE, values).rowcount == 1


def claim_due(
    conn: Connection,
    *,
    skip_locked: bool,
    owner: str,
    now: datetime,
    until: datetime,
    limit: int,
) -> list[Instance]:
    """Claim up to ``limit`` unclaimed instances whose deadline passed at ``now``, earliest first.

    The returned instances are as they were read when claimed; the transaction must commit
    before another reconciler can see the claims.
    """
    if skip_locked:
        query = _due_candidates(limit).with_for_update(skip_locked=True, of=_T)
        rows = conn.execute(query, {"now": now}).all()
        claimed = [Instance(*row) for row in rows]
        if claimed:
            ids = [instance.id for instance in claimed]
            conn.execute(_CLAIM_MANY, {"ids": ids, "owner": owner, "until": until})
        return claimed
    candidates = [Instance(*row) for row in conn.execute(_due_candidates(limit), {"now": now})]
    values = {"owner": owner, "now": now, "until": until}
    return [
        instance
        for instance in candidates
        if conn.execute(
            _CLAIM_AS_READ, {**values, "instance_id": instance.id, "read_version": instance.version}
        ).rowcount
        == 1
    ]


def release(conn: Connection, instance_ids: Sequence[str], *, owner: str) -> None:
    """Give back ``owner``'s claims on ``instance_ids``; another's claim there is left alone."""
    for instance_id in instance_ids:
        conn.execute(_RELEASE, {"instance_id": instance_id, "owner": owner})


__all__ = ["claim_due", "claim_one", "lease_end", "release"]
