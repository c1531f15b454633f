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

Claims only order reconcilers, and whatever else must keep them off an instance for a while (a
call that moves money, while it is under way: :func:`claim_within` takes its claim in the same
transaction as the call's record). The engine ignores them: a notification may still move a
claimed instance, and the engine's compare-and-set keeps that safe.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    bindparam,
    exists,
    or_,
    select,
    update,
)

from fsm.clock import require_aware
from fsm.errors import InvalidInstanceData
from fsm.model import Instance
from fsm.store.sql import SqlStore
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


def _due(limit: int) -> Select[Any]:
    return (
        select(*INSTANCE_COLUMNS)
        .where(_T.c.deadline_at <= bindparam("now"))
        .order_by(_T.c.deadline_at)
        .limit(limit)
    )


class Leases:
    """Reconcilers' claims on the instances of one :class:`~fsm.store.sql.SqlStore`."""

    def __init__(self, store: SqlStore) -> None:
        """Claim in ``store``'s database, on the instances it keeps."""
        self._store = store

    def due(self, now: datetime, *, limit: int = 100) -> list[Instance]:
        """Instances whose deadline passed at ``now`` (aware), claimed or not, earliest first."""
        with self._store.connection() as conn:
            rows = conn.execute(_due(limit), {"now": require_aware(now)})
            return [Instance(*row) for row in rows]

    def claim_due(
        self, now: datetime, *, owner: str, lease: timedelta, limit: int = 100
    ) -> list[Instance]:
        """Claim up to ``limit`` due instances no other reconciler holds, earliest deadline first.

        Each stays claimed by ``owner`` until :meth:`release` or until ``lease`` has passed. The
        instances are returned as they were read when claimed.

        Raises:
            InvalidInstanceData: ``now`` is naive or ``lease`` is not positive.
        """
        until = _lease_end(now, lease)
        with self._store.transaction() as conn:
            if self._store.dialect == "postgresql":
                return _claim_skipping_locked(conn, owner=owner, now=now, until=until, limit=limit)
            return _claim_each(conn, owner=owner, now=now, until=until, limit=limit)

    def claim(self, instance_id: str, *, owner: str, now: datetime, lease: timedelta) -> bool:
        """Claim one instance, or renew ``owner``'s own claim; false when another holds it.

        Raises:
            InvalidInstanceData: ``now`` is naive or ``lease`` is not positive.
        """
        with self._store.transaction() as conn:
            return claim_within(conn, instance_id, owner=owner, now=now, lease=lease)

    def release(self, instance_ids: Sequence[str], *, owner: str) -> None:
        """Give back ``owner``'s claims on ``instance_ids``; another's claim there is left alone."""
        with self._store.transaction() as conn:
            release_within(conn, instance_ids, owner=owner)


def claim_within(
    conn: Connection, instance_id: str, *, owner: str, now: datetime, lease: timedelta
) -> bool:
    """:meth:`Leases.claim` in the caller's transaction on ``conn``: the claim commits, or rolls
    back, with whatever else the transaction writes.

    Raises:
        InvalidInstanceData: ``now`` is naive or ``lease`` is not positive.
    """
    until = _lease_end(now, lease)
    values = {"instance_id": instance_id, "owner": owner, "now": now, "until": until}
    return bool(conn.execute(_CLAIM_ONE, values).rowcount == 1)


def release_within(conn: Connection, instance_ids: Sequence[str], *, owner: str) -> None:
    """:meth:`Leases.release` in the caller's transaction on ``conn``."""
    for instance_id in instance_ids:
        conn.execute(_RELEASE, {"instance_id": instance_id, "owner": owner})


def _lease_end(now: datetime, lease: timedelta) -> datetime:
    """When a claim taken at ``now`` lapses.

    Raises:
        InvalidInstanceData: ``now`` is naive or ``lease`` is not positive.
    """
    if lease <= timedelta(0):
        raise InvalidInstanceData(f"a claim's lease must be positive, not {lease}")
    return require_aware(now) + lease


def _claim_skipping_locked(
    conn: Connection, *, owner: str, now: datetime, until: datetime, limit: int
) -> list[Instance]:
    """PostgreSQL: lock the due rows no other transaction holds, then claim them all."""
    query = _due_candidates(limit).with_for_update(skip_locked=True, of=_T)
    claimed = [Instance(*row) for row in conn.execute(query, {"now": now}).all()]
    if claimed:
        ids = [instance.id for instance in claimed]
        conn.execute(_CLAIM_MANY, {"ids": ids, "owner": owner, "until": until})
    return claimed


def _claim_each(
    conn: Connection, *, owner: str, now: datetime, until: datetime, limit: int
) -> list[Instance]:
    """SQLite: claim each due row with a compare-and-set that fails if it moved since read."""
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


def unclaimed(instance_id: ColumnElement[Any], now: datetime) -> ColumnElement[bool]:
    """A condition: the instance ``instance_id`` names is claimed by nobody at ``now``."""
    free = or_(_T.c.claimed_until.is_(None), _T.c.claimed_until < now)
    return exists().where(_T.c.id == instance_id, free)


def claim_owner(role: str = "") -> str:
    """A claim's name that no other process shares: ``role``, host, pid and a random part."""
    prefix = f"{role}:" if role else ""
    return f"{prefix}{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


__all__ = ["Leases", "claim_owner", "claim_within", "release_within", "unclaimed"]
