"""Call intents: every call to the provider is written down before it is sent.

A process can stop at any point: after its request reached the provider and before the answer
was stored, the provider has acted (registered, cancelled) and the database knows nothing.
So the intent (which call, for which instance, its reference, amount and request) is
committed first, and finished only once the answer's transition is committed. An intent left
open past any call's time marks exactly the instances a crash left behind; the reconciler
repairs them from the provider's own answer (an inquiry), and never by sending a call that
moves money a second time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from fsm._payload import clean_payload, read_payload
from fsm.clock import require_aware
from fsm.store.tables import INTENT_TABLE

_T = INTENT_TABLE
_INSERT = insert(_T)
_FINISH = (
    update(_T)
    .where(_T.c.id == bindparam("intent_id"), _T.c.finished_at.is_(None))
    .values(finished_at=bindparam("at"), outcome=bindparam("result"))
)
_OPEN = select(_T).where(_T.c.finished_at.is_(None)).order_by(_T.c.recorded_at, _T.c.id)
_OF_INSTANCE = select(_T).where(_T.c.instance_id == bindparam("instance_id")).order_by(_T.c.id)


@dataclass(frozen=True, slots=True)
class CallIntent:
    """One recorded provider call; ``finished_at`` is ``None`` while its answer is not stored."""

    id: int
    instance_id: str
    call: str
    reference_no: str | None
    amount: str | None
    tx_id: str | None
    exclusive: bool
    request: Mapping[str, Any]
    """The request's fields as sent, secrets redacted."""
    recorded_at: datetime
    finished_at: datetime | None
    outcome: str | None
    call_key: str | None = None
    """The caller's idempotency key for the call (a refund request's id), if it gave one."""


def record(
    conn: Connection,
    *,
    instance_id: str,
    call: str,
    reference_no: str | None,
    amount: str | None,
    tx_id: str | None,
    request: Mapping[str, Any],
    at: datetime,
    exclusive: bool = False,
    call_key: str | None = None,
) -> int:
    """Store a new open intent and return its id.

    Raises:
        sqlalchemy.exc.IntegrityError: no such instance, an exclusive call of this kind is open
            for it, or a call under ``call_key`` is already recorded for it.
    """
    values = {
        "call_key": call_key,
        "instance_id": instance_id,
        "call": call,
        "exclusive": exclusive,
        "reference_no": reference_no,
        "amount": amount,
        "tx_id": tx_id,
        "request": json.dumps(clean_payload(request), sort_keys=True, separators=(",", ":")),
        "recorded_at": require_aware(at),
    }
    key = conn.execute(_INSERT, values).inserted_primary_key
    if key is None or key[0] is None:  # an intent that cannot be finished would block forever
        raise RuntimeError("the database returned no id for the new call intent")
    return int(key[0])


def finish(conn: Connection, intent_id: int, *, outcome: str, at: datetime) -> bool:
    """Close an open intent with its outcome; false when it was already closed (or unknown)."""
    values = {"intent_id": intent_id, "at": require_aware(at), "result": outcome[:32]}
    return conn.execute(_FINISH, values).rowcount == 1


def still_open(
    conn: Connection, *, before: datetime | None, instance_id: str | None, limit: int
) -> list[CallIntent]:
    """Intents never finished, oldest first: recorded at or before ``before`` and of
    ``instance_id``, where given."""
    query = _OPEN.limit(limit)
    if before is not None:
        query = query.where(_T.c.recorded_at <= require_aware(before))
    if instance_id is not None:
        query = query.where(_T.c.instance_id == instance_id)
    return [_intent(row._asdict()) for row in conn.execute(query)]


def of_instance(conn: Connection, instance_id: str) -> list[CallIntent]:
    """An instance's intents in the order they were recorded."""
    return [
        _intent(row._asdict()) for row in conn.execute(_OF_INSTANCE, {"instance_id": instance_id})
    ]


def by_key(conn: Connection, instance_id: str, call_key: str) -> CallIntent | None:
    """The instance's intent recorded under ``call_key``, if any."""
    query = select(_T).where(_T.c.instance_id == instance_id, _T.c.call_key == call_key)
    row = conn.execute(query).first()
    return None if row is None else _intent(row._asdict())


def _intent(row: dict[str, Any]) -> CallIntent:
    row["request"] = read_payload(row["request"])  # a damaged request must not hide the call
    return CallIntent(**row)


__all__ = ["CallIntent", "by_key", "finish", "of_instance", "record", "still_open"]
