"""The call journal: every call to the provider is written down before it is sent.

A process can stop at any point: after its request reached the provider and before the answer
was stored, the provider has acted (registered, cancelled) and the database knows nothing.
So the intent (which call, for which instance, its ``referenceNo``, amount and request) is
committed first, and finished only once the answer's transition is committed. An intent left
open past any call's time marks exactly the instances a crash left behind; the reconciler
repairs them from the provider's own answer (an inquiry), and never by sending a call that
moves money a second time.

A call that moves money holds its instance while it is under way (:class:`Hold`): the claim
a reconciler takes before it repairs an intent is taken in the same transaction as the intent,
and given back in the one that finishes it, so no repair can close the intent of a call whose
answer is still to come.

The journal keeps its ``call_intent`` table (:mod:`adapters.reconcile.intent_table`) in the
engine's database, on the same sqlmodel metadata; the schema's migrations create it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, exists, func, insert, select, update

from adapters.errors import CallInDoubt, CallKeyTaken, InstanceBusy
from adapters.reconcile.intent_table import CALL_INTENT_TABLE, CallIntentRow
from fsm._payload import clean_payload, read_payload
from fsm.clock import Clock, require_aware
from fsm.store.leases import claim_within, release_within, unclaimed
from fsm.store.sql import SqlStore
from fsm.store.tables import UtcDateTime

_T = CALL_INTENT_TABLE
_INSERT = insert(_T)
_FINISH = (
    update(_T)
    .where(_T.c.id == bindparam("intent_id"), _T.c.finished_at.is_(None))
    .values(finished_at=bindparam("at"), outcome=bindparam("result"))
)
_OVERRULE = (
    update(_T)
    .where(_T.c.id == bindparam("intent_id"), _T.c.outcome == bindparam("closed_as"))
    .values(
        finished_at=bindparam("at"),
        outcome=bindparam("result"),
        left_open_at=func.coalesce(bindparam("left_open", type_=UtcDateTime), _T.c.left_open_at),
    )
)
_LEAVE_OPEN = (
    update(_T)
    .where(_T.c.id == bindparam("intent_id"), _T.c.finished_at.is_(None))
    .values(left_open_at=bindparam("at"))
)
_RENEW = (
    update(_T)
    .where(_T.c.id == bindparam("intent_id"), _T.c.finished_at.is_(None))
    .values(held_until=bindparam("until"))
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
    held_until: datetime | None = None
    """Until when the call holds its instance, as last renewed; ``None`` without a :class:`Hold`."""
    left_open_at: datetime | None = None
    """When the call left the intent open for a repair (its answer lost); ``None`` while the
    call may still be under way, and for a call made without a :class:`Hold`."""

    @property
    def last_sent_by(self) -> datetime:
        """The latest the call may have gone out: when it gave up, else when its hold ran out
        (it renews the hold right before sending, and sends nothing once it has lost it), else
        when it was recorded."""
        return self.left_open_at or self.held_until or self.recorded_at


@dataclass(frozen=True, slots=True)
class Hold:
    """A call's claim on its instance while the call is under way, taken as a reconciler takes
    one (:mod:`fsm.store.leases`): no reconciler repairs the instance while it holds."""

    owner: str
    """The claim's name, the call's alone."""
    lease: timedelta
    """How long the claim holds unless given back first."""


class _Refused(Exception):
    """A unique index or the foreign key refused an intent; :meth:`CallJournal.record` says why."""


class _Held(Exception):
    """A :class:`Hold` could not be taken (or renewed); its transaction is rolled back."""


class CallJournal:
    """The provider calls recorded for the instances of one :class:`~fsm.store.sql.SqlStore`."""

    def __init__(self, store: SqlStore, *, clock: Clock) -> None:
        """Record calls in ``store``'s database, timed by ``clock``.

        ``clock`` stamps the calls :func:`~adapters.reconcile.intents.recorded_call` makes and
        tells how old an intent is (:meth:`age`). Give it the engine's clock: a journal on
        another clock would take a call under way for abandoned, or an abandoned one for under
        way, by however far the two clocks disagree.
        """
        self._store = store
        self.clock = clock

    def record(
        self,
        instance_id: str,
        call: str,
        *,
        at: datetime,
        reference_no: str | None = None,
        amount: str | None = None,
        tx_id: str | None = None,
        request: Mapping[str, Any] | None = None,
        exclusive: bool = False,
        call_key: str | None = None,
        hold: Hold | None = None,
    ) -> int:
        """Commit an open intent for a provider call about to be sent; returns its id.

        An ``exclusive`` call (a cancel) is refused while another of its kind for the instance is
        open, and a call under a ``call_key`` already recorded for the instance is refused
        whether or not it is still open: the database's unique indexes decide, so of two racing
        callers one gets through. With ``hold``, the instance is claimed from ``at`` in the same
        transaction, and nothing is recorded while a reconciler holds it; give the claim back
        with :meth:`finish` or :meth:`release`.

        Raises:
            InvalidInstanceData: ``at`` is naive or ``request`` is not JSON data.
            InstanceNotFound: no instance ``instance_id`` is stored.
            CallKeyTaken: a call under ``call_key`` is already recorded for the instance.
            CallInDoubt: ``exclusive``, and such a call for the instance is still open.
            InstanceBusy: ``hold``, and a reconciler holds the instance.
        """
        recorded_at = require_aware(at)
        values = {
            "call_key": call_key,
            "instance_id": instance_id,
            "call": call,
            "exclusive": exclusive,
            "reference_no": reference_no,
            "amount": amount,
            "tx_id": tx_id,
            "request": json.dumps(clean_payload(request), sort_keys=True, separators=(",", ":")),
            "recorded_at": recorded_at,
            "held_until": None if hold is None else recorded_at + hold.lease,
        }
        try:
            with self._store.transaction(refused=_Refused) as conn:
                key = conn.execute(_INSERT, values).inserted_primary_key
                if hold is not None and not claim_within(
                    conn, instance_id, owner=hold.owner, now=recorded_at, lease=hold.lease
                ):
                    raise _Held
        except _Held:
            raise InstanceBusy(instance_id, call) from None
        except _Refused:
            self._store.get(instance_id)  # the foreign key refused it: InstanceNotFound
            taken = None if call_key is None else self.by_key(instance_id, call_key)
            if taken is not None:
                raise CallKeyTaken(instance_id, call_key or "", taken.id) from None
            raise CallInDoubt(instance_id, call) from None
        if key is None or key[0] is None:  # an intent that cannot be finished would block forever
            raise RuntimeError("the database returned no id for the new call intent")
        return int(key[0])

    def by_key(self, instance_id: str, call_key: str) -> CallIntent | None:
        """The provider call recorded under ``call_key`` for the instance, if any."""
        query = select(_T).where(_T.c.instance_id == instance_id, _T.c.call_key == call_key)
        with self._store.connection() as conn:
            row = conn.execute(query).first()
        return None if row is None else _intent(row._asdict())

    def finish(
        self, intent_id: int, *, outcome: str, at: datetime, held: tuple[str, Hold] | None = None
    ) -> bool:
        """Close an intent once its answer is stored, giving back the claim ``held`` (the
        intent's instance, and its call's :class:`Hold`) in the same transaction; false when it
        was closed already (by a repair that came first)."""
        values = {"intent_id": intent_id, "at": require_aware(at), "result": outcome[:32]}
        with self._store.transaction() as conn:
            finished = conn.execute(_FINISH, values).rowcount == 1
            if held is not None:
                release_within(conn, [held[0]], owner=held[1].owner)
        return finished

    def renew(self, intent_id: int, instance_id: str, hold: Hold, *, at: datetime) -> bool:
        """Take ``hold``'s claim on the instance again for its whole lease from ``at``, right
        before the call is sent; false, and nothing changed, when the call may no longer go out:
        its intent was closed (by a repair), or another has claimed the instance.
        """
        until = require_aware(at) + hold.lease
        try:
            with self._store.transaction() as conn:
                renewed = conn.execute(_RENEW, {"intent_id": intent_id, "until": until})
                if renewed.rowcount != 1 or not claim_within(
                    conn, instance_id, owner=hold.owner, now=at, lease=hold.lease
                ):
                    raise _Held
        except _Held:
            return False
        return True

    def release(self, intent_id: int, instance_id: str, hold: Hold, *, at: datetime) -> bool:
        """Give back ``hold``'s claim on the instance and leave the intent open for a repair,
        stamped ``left_open_at``; false, and nothing stamped, when a repair closed it first.

        The stamp and the check that the intent is open are one statement, in the transaction
        that gives the claim back: a repair under way learns that the call is done with the
        intent (:meth:`close_repaired`), and one that comes after the claim is given back is not
        taken for one that came before it.
        """
        values = {"intent_id": intent_id, "at": require_aware(at)}
        with self._store.transaction() as conn:
            still_open = conn.execute(_LEAVE_OPEN, values).rowcount == 1
            release_within(conn, [instance_id], owner=hold.owner)
        return still_open

    def close_repaired(self, intent: CallIntent, *, outcome: str, at: datetime) -> bool:
        """Close ``intent`` with what a repair found, as read before the repair's inquiry; false,
        and nothing changed, when it was closed meanwhile or its call left it open since.

        A call still under way when the repair read its intent may have reached the provider
        after the repair's inquiry: once it has said so (:meth:`release`), or renewed its hold
        to send (:meth:`renew`), that inquiry proves nothing about it, and the intent waits for
        a repair that asks after it.
        """
        query = _FINISH.where(_T.c.held_until.is_not_distinct_from(intent.held_until))
        if intent.left_open_at is None:
            query = query.where(_T.c.left_open_at.is_(None))
        values = {"intent_id": intent.id, "at": require_aware(at), "result": outcome[:32]}
        with self._store.transaction() as conn:
            return conn.execute(query, values).rowcount == 1

    def overrule(
        self, intent_id: int, *, closed_as: str, outcome: str | None, at: datetime
    ) -> bool:
        """Replace the outcome a repair closed an intent with, before the call's own answer came,
        by what that answer said; ``outcome=None`` opens the intent again, for another repair,
        stamped ``left_open_at``.

        False, and nothing changed, when the intent's outcome is no longer ``closed_as``, or when
        opening it again would leave two exclusive calls of the instance open.
        """
        moment = require_aware(at)
        values = {
            "intent_id": intent_id,
            "closed_as": closed_as,
            "at": None if outcome is None else moment,
            "result": None if outcome is None else outcome[:32],
            # Opened again by its call, which is done with it: a repair that read it before
            # must not close it on what it learnt then (see close_repaired).
            "left_open": moment if outcome is None else None,
        }
        try:
            with self._store.transaction(refused=_Refused) as conn:
                return conn.execute(_OVERRULE, values).rowcount == 1
        except _Refused:
            return False

    def age(self, intent: CallIntent) -> timedelta:
        """How long ago, on this journal's clock, ``intent`` was recorded."""
        return require_aware(self.clock.now()) - intent.recorded_at

    def still_open(
        self,
        *,
        recorded_before: datetime | None = None,
        instance_id: str | None = None,
        unclaimed_at: datetime | None = None,
        held_after: datetime | None = None,
        limit: int = 100,
    ) -> list[CallIntent]:
        """Intents never finished, oldest first; only those recorded at or before
        ``recorded_before``, of ``instance_id``, of instances nobody has claimed at
        ``unclaimed_at`` (those a reconciler left claimed, to take no pass's places), and whose
        call holds its instance past ``held_after``, where given."""
        query = _OPEN.limit(limit)
        if recorded_before is not None:
            query = query.where(_T.c.recorded_at <= require_aware(recorded_before))
        if unclaimed_at is not None:
            query = query.where(unclaimed(_T.c.instance_id, require_aware(unclaimed_at)))
        if instance_id is not None:
            query = query.where(_T.c.instance_id == instance_id)
        if held_after is not None:
            query = query.where(_T.c.held_until > require_aware(held_after))
        with self._store.connection() as conn:
            return [_intent(row._asdict()) for row in conn.execute(query)]

    def closed_alone(
        self, outcomes: Iterable[str], *, beside: Iterable[str] = (), limit: int = 100
    ) -> list[CallIntent]:
        """Intents closed with one of ``outcomes`` whose instance has no other call of theirs
        open or closed with one of ``outcomes`` or ``beside``, earliest closed first."""
        chosen, other = sorted(outcomes), _T.alias("other")
        near = (other.c.instance_id == _T.c.instance_id) & (other.c.call == _T.c.call)
        alone = ~exists().where(near, other.c.id != _T.c.id).where(
            other.c.finished_at.is_(None) | other.c.outcome.in_(sorted({*chosen, *beside}))
        )
        query = select(_T).where(_T.c.outcome.in_(chosen), alone).limit(limit)
        with self._store.connection() as conn:
            rows = conn.execute(query.order_by(_T.c.finished_at, _T.c.id))
            return [_intent(row._asdict()) for row in rows]

    def of_instance(self, instance_id: str) -> list[CallIntent]:
        """Every provider call recorded for the instance, in order."""
        with self._store.connection() as conn:
            rows = conn.execute(_OF_INSTANCE, {"instance_id": instance_id})
            return [_intent(row._asdict()) for row in rows]


def _intent(row: dict[str, Any]) -> CallIntent:
    row["request"] = read_payload(row["request"])  # a damaged request must not hide the call
    return CallIntent(**row)


__all__ = ["CALL_INTENT_TABLE", "CallIntent", "CallIntentRow", "CallJournal", "Hold"]
