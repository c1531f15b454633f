"""The reads :class:`~fsm.store.sql.SqlStore` makes through SQLAlchemy, on a given connection.

Instances by id, by provider reference or oldest first, and refused events; each row is read
back into the engine's values. The hot path (units, history, bulk replay reads) runs on the
driver's cursor instead (:mod:`fsm.store.unit`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, union

from fsm._payload import read_payload
from fsm.errors import InstanceNotFound, RejectReason
from fsm.model import Instance, RejectedEvent
from fsm.store.tables import INSTANCE_COLUMNS, INSTANCE_TABLE, LOG_TABLE, REJECTED_TABLE

_I, _R = INSTANCE_TABLE, REJECTED_TABLE
_SELECT_INSTANCE = select(*INSTANCE_COLUMNS).where(_I.c.id == bindparam("instance_id"))
_SELECT_REJECTED = select(_R).where(_R.c.instance_id == bindparam("instance_id")).order_by(_R.c.id)


def load(conn: Connection, instance_id: str) -> Instance:
    """The stored instance.

    Raises:
        InstanceNotFound: nothing is stored under ``instance_id``.
    """
    row = conn.execute(_SELECT_INSTANCE, {"instance_id": instance_id}).first()
    if row is None:
        raise InstanceNotFound(instance_id)
    return instance(row._asdict())


def every_id(conn: Connection) -> list[str]:
    """Every instance id, and the id of any log whose instance row is gone, sorted."""
    ids = union(select(_I.c.id), select(LOG_TABLE.c.instance_id))
    return sorted(conn.execute(ids).scalars())


def live_with_reference(conn: Connection, flow: str, reference_no: str) -> str | None:
    """The id of the live instance of ``flow`` with ``reference_no``, if any."""
    query = select(_I.c.id).where(
        _I.c.flow == flow, _I.c.reference_no == reference_no, _I.c.deadline_at.is_not(None)
    )
    return conn.execute(query).scalar()


def _finding(by_tx_id: bool, by_reference: bool) -> Any:
    query = select(*INSTANCE_COLUMNS)
    if by_tx_id:
        query = query.where(_I.c.tx_id == bindparam("tx_id"))
    if by_reference:
        query = query.where(_I.c.reference_no == bindparam("reference_no"))
    return query.order_by(_I.c.id)


_FIND = {(tx, ref): _finding(tx, ref) for tx in (False, True) for ref in (False, True)}
"""The lookups by provider transaction id and/or reference, built once: each request makes one."""


def find(conn: Connection, *, tx_id: str | None, reference_no: str | None) -> list[Instance]:
    """Instances with the given provider transaction id and/or reference, by id."""
    query = _FIND[tx_id is not None, reference_no is not None]
    rows = conn.execute(query, {"tx_id": tx_id, "reference_no": reference_no})
    return [instance(row._asdict()) for row in rows]


def live_ids(conn: Connection, flow: str, flow_version: int) -> list[str]:
    """Ids of the unfinished instances of ``flow`` on ``flow_version``: final states have no
    deadline, every other state has one (the flow checks say so)."""
    query = select(_I.c.id).where(
        _I.c.flow == flow, _I.c.flow_version == flow_version, _I.c.deadline_at.is_not(None)
    )
    return list(conn.execute(query.order_by(_I.c.id)).scalars())


def oldest_first(conn: Connection, *, limit: int) -> list[Instance]:
    """Up to ``limit`` stored instances, oldest first."""
    query = select(*INSTANCE_COLUMNS).order_by(_I.c.created_at, _I.c.id).limit(limit)
    return [instance(row._asdict()) for row in conn.execute(query)]


def rejections(conn: Connection, instance_id: str) -> list[RejectedEvent]:
    """The instance's refused events in the order they arrived."""
    rows = conn.execute(_SELECT_REJECTED, {"instance_id": instance_id})
    return [_rejected(row._asdict()) for row in rows]


def has_rejection(conn: Connection, instance_id: str, idempotency_key: str) -> bool:
    """Whether a refused event under ``idempotency_key`` is recorded for the instance."""
    query = (
        select(_R.c.id)
        .where(_R.c.instance_id == instance_id, _R.c.idempotency_key == idempotency_key)
        .limit(1)
    )
    return conn.execute(query).first() is not None


def count_rejections(conn: Connection, reason: RejectReason, instance_id: str | None) -> int:
    """How many events were refused for ``reason``, in all or for one instance."""
    query = select(func.count()).where(_R.c.reason == str(reason))
    if instance_id is not None:
        query = query.where(_R.c.instance_id == instance_id)
    return int(conn.execute(query).scalar_one())


def instance(row: Mapping[str, Any]) -> Instance:
    """An instance from a row of :data:`~fsm.store.tables.INSTANCE_COLUMNS`."""
    return Instance(**row)


def _rejected(row: Mapping[str, Any]) -> RejectedEvent:
    values = dict(row)
    del values["id"]
    values["reason"] = RejectReason(values["reason"])
    values["payload"] = read_payload(values["payload"])
    return RejectedEvent(**values)
