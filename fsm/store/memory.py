"""A store in this process's memory: the engine's decisions without a database.

:class:`MemoryStore` keeps every promise of :mod:`fsm.store.protocol` that
:class:`~fsm.store.sql.SqlStore` keeps: compare-and-set versions, one log entry per idempotency
key, one live instance per flow and reference, refused events recorded, naive times refused, and
units that commit whole or roll back whole. A unit holds the store's lock from its start to its
end, as SQLite's writer holds the file, so units on several threads run one after another and
readers never see a unit's writes before it commits. Nothing outlives the process: it serves
tests, examples and benchmarks, as ``httpx.MockTransport`` serves an HTTP client's.

Its audit chain is the one :class:`~fsm.store.sql.SqlStore` writes, computed when it is read
(:meth:`MemoryStore.chained`) rather than on every step: a stored record never changes, so its
link is the same whenever it is made, and nothing outside the process can edit these rows in
between. Deciding pays for no MAC.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Self, TypeVar

from fsm._payload import dump_payload
from fsm._signals import KeyTaken, ReferenceTaken
from fsm.chain.keys import AuditKeys
from fsm.chain.link import Chain, instance_values, record_values
from fsm.chain.verify import ChainedRows
from fsm.clock import require_aware
from fsm.definition import BINDABLE_FIELDS
from fsm.errors import (
    ConcurrentTransition,
    ConfigurationError,
    InstanceExists,
    InstanceNotFound,
    InvalidInstanceData,
    ReferenceInUse,
)
from fsm.events import Event
from fsm.model import Instance, RejectedEvent, TransitionRecord
from fsm.store.protocol import Along, StoredStep

_Slot = tuple[str, str]
"""A live instance's flow and reference: at most one instance holds each."""
_Row = TypeVar("_Row", TransitionRecord, RejectedEvent)
_Linked = tuple[TransitionRecord, tuple[object, ...], str, str]
"""A logged record, its chained values, its link and the id of the key that made it."""


class MemoryStore:
    """Flow instances, their logs and their refused events, held in memory and thread-safe."""

    def __init__(self, *, audit_keys: AuditKeys | None = None) -> None:
        """An empty store; its rows are chained as :class:`~fsm.SqlStore` chains them."""
        self.chain = Chain(audit_keys)
        """How this store links and seals rows, and checks them."""
        self._links: dict[str, list[_Linked]] = {}
        """Each instance's log records linked so far, with their links and key ids."""
        self._lock = threading.RLock()
        self._instances: dict[str, Instance] = {}
        self._logs: dict[str, list[TransitionRecord]] = {}
        self._keys: dict[tuple[str, str], TransitionRecord] = {}
        self._rejected: dict[str, list[RejectedEvent]] = {}
        self._live: dict[_Slot, str] = {}
        self._outbox: list[Event] = []

    def insert_instance(self, instance: Instance) -> None:
        """Store a new instance.

        Raises:
            InstanceExists: an instance with that id is already stored.
            ReferenceInUse: a live instance of the flow has the same reference.
            InvalidInstanceData: one of its times is naive; nothing was stored.
        """
        instance = _in_utc(instance)
        slot = _live_slot(instance)
        with self._lock:
            holder = None if slot is None else self._live.get(slot)
            if holder is not None and holder != instance.id:
                raise ReferenceInUse(instance.flow, instance.reference_no or "", holder)
            if instance.id in self._instances:
                raise InstanceExists(instance.id)
            self._instances[instance.id] = instance
            if slot is not None:
                self._live[slot] = instance.id

    def get(self, instance_id: str) -> Instance:
        """The stored instance.

        Raises:
            InstanceNotFound: nothing is stored under ``instance_id``.
        """
        with self._lock:
            instance = self._instances.get(instance_id)
        if instance is None:
            raise InstanceNotFound(instance_id)
        return instance

    def find(self, *, tx_id: str | None = None, reference_no: str | None = None) -> list[Instance]:
        """Instances with the given provider transaction id and/or reference, by id."""
        with self._lock:
            found = [
                instance
                for instance in self._instances.values()
                if (tx_id is None or instance.tx_id == tx_id)
                and (reference_no is None or instance.reference_no == reference_no)
            ]
        return sorted(found, key=lambda instance: instance.id)

    def outbox_events(self) -> list[Event]:
        """The events committed steps emitted, oldest first (see :mod:`fsm.events`)."""
        with self._lock:
            return list(self._outbox)

    def list_instances(self, *, limit: int = 1000) -> list[Instance]:
        """Stored instances, oldest first."""
        with self._lock:
            instances = list(self._instances.values())
        return sorted(instances, key=lambda instance: (instance.created_at, instance.id))[:limit]

    def live_ids(self, flow: str, *, flow_version: int) -> list[str]:
        """Ids of the unfinished instances of ``flow`` pinned to ``flow_version``, by id."""
        with self._lock:
            instances = list(self._instances.values())
        return sorted(
            i.id
            for i in instances
            if i.flow == flow and i.flow_version == flow_version and i.deadline_at is not None
        )

    def history(self, instance_id: str) -> list[TransitionRecord]:
        """The instance's applied transitions in order (empty for an unknown id)."""
        with self._lock:
            return [_detached(record) for record in self._logs.get(instance_id, ())]

    def rejections(self, instance_id: str) -> list[RejectedEvent]:
        """The instance's refused events in the order they arrived."""
        with self._lock:
            return [_detached(rejected) for rejected in self._rejected.get(instance_id, ())]

    def has_rejection(self, instance_id: str, idempotency_key: str) -> bool:
        """Whether a refused event under ``idempotency_key`` is recorded for the instance."""
        return any(
            rejected.idempotency_key == idempotency_key for rejected in self.rejections(instance_id)
        )

    def stored_steps(
        self, instance_ids: Sequence[str], *, with_time: bool = False
    ) -> Iterator[StoredStep]:
        """The ids' logged steps without payloads, by instance and then sequence.

        ``occurred_at`` is ``None`` unless ``with_time``.
        """
        for instance_id in sorted(set(instance_ids)):
            for record in self.history(instance_id):
                yield StoredStep(
                    record.instance_id,
                    record.seq,
                    record.event,
                    record.source,
                    record.dest,
                    record.actor,
                    record.flow_version,
                    record.fingerprint,
                    record.occurred_at if with_time else None,
                )

    def chained(self, instance_ids: Iterable[str]) -> Iterator[ChainedRows]:
        """Each id's rows as the audit chain is checked from, as :meth:`SqlStore.chained
        <fsm.store.sql.SqlStore.chained>` reads them; links not made yet are made now."""
        chain = self.chain
        with self._lock:
            for instance_id in dict.fromkeys(instance_ids):
                linked = self._linked(instance_id)
                steps = [(*values, link, key_id) for _, values, link, key_id in linked]
                instance = self._instances.get(instance_id)
                sealed = None
                if instance is not None:
                    latest = linked[-1][2] if linked else ""
                    values = instance_values(instance)
                    sealed = (*values, latest, chain.seal(latest, values), chain.key_id)
                yield ChainedRows(instance_id, sealed, steps)

    def _linked(self, instance_id: str) -> list[_Linked]:
        """The instance's log, each record with its link, the missing links made now.

        A link is kept with the record it was made of: a record a rolled-back unit left behind
        is never taken for the one that replaced it.
        """
        log = self._logs.get(instance_id, [])
        linked = self._links.setdefault(instance_id, [])
        kept = 0
        while kept < min(len(log), len(linked)) and linked[kept][0] is log[kept]:
            kept += 1
        del linked[kept:]
        chain, previous = self.chain, linked[-1][2] if linked else ""
        for record in log[kept:]:
            values = record_values(record, dump_payload(record.payload))
            previous = chain.link(previous, values)
            linked.append((record, values, previous, chain.key_id))
        return linked

    def instance_ids(self) -> list[str]:
        """Every instance id, sorted."""
        with self._lock:
            return sorted(self._instances)

    def unit(self) -> MemoryUnit:
        """A new transaction; it holds the store's lock from entry to exit."""
        return MemoryUnit(self)


class MemoryUnit:
    """One transaction on a :class:`MemoryStore`: writes are undone when the block raises."""

    __slots__ = ("_store", "_undo")

    def __init__(self, store: MemoryStore) -> None:
        """Prepare a unit; the store's lock is taken on entry."""
        self._store = store
        self._undo: list[Callable[[], object]] = []

    def __enter__(self) -> Self:
        """Take the store's lock."""
        self._store._lock.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        """Keep the writes, or undo them (newest first) when the block raised; unlock."""
        try:
            if error is not None:
                for undo in reversed(self._undo):
                    undo()
        finally:
            self._undo.clear()
            self._store._lock.release()

    def load(self, instance_id: str) -> Instance:
        """The instance as this unit sees it.

        Raises:
            InstanceNotFound: nothing is stored under ``instance_id``.
        """
        instance = self._store._instances.get(instance_id)
        if instance is None:
            raise InstanceNotFound(instance_id)
        return instance

    def find_key(self, instance_id: str, key: str) -> TransitionRecord | None:
        """The transition already applied under ``key``, if any."""
        record = self._store._keys.get((instance_id, key))
        return None if record is None else _detached(record)

    def apply(
        self,
        record: TransitionRecord,
        *,
        expected_version: int,
        deadline_at: datetime | None,
        bound: Mapping[str, str],
    ) -> Instance:
        """Compare-and-set the instance and append ``record``; the instance as moved (see
        :class:`fsm.store.Unit`)."""
        if not BINDABLE_FIELDS.issuperset(bound):
            names = tuple(sorted(bound))
            raise InvalidInstanceData(f"only {sorted(BINDABLE_FIELDS)} may be bound, not {names}")
        record = _detached(_record_in_utc(record))
        due = None if deadline_at is None else require_aware(deadline_at)
        store = self._store
        current = store._instances.get(record.instance_id)
        if current is None or current.version != expected_version:
            raise ConcurrentTransition(
                record.instance_id, record.source, record.event, expected_version
            )
        moved = current.advanced(record, due, bound)
        slot = _live_slot(moved)
        holder = None if slot is None else store._live.get(slot)
        if holder is not None and holder != moved.id:
            raise ReferenceTaken()
        if (record.instance_id, record.idempotency_key) in store._keys:
            raise KeyTaken()
        self._put_instance(current, moved)
        self._append(store._logs, record.instance_id, record)
        self._remember_key(record)
        return moved

    def along(self, write: Along) -> None:
        """Refuse (:class:`~fsm.errors.ConfigurationError`, the unit rolls back): a memory store
        has no database connection for writes to ride along on."""
        raise ConfigurationError("writes riding along with a step need a SqlStore, not memory")

    def reject(self, rejected: RejectedEvent) -> None:
        """Record an event that was not applied.

        Raises:
            InvalidInstanceData: its time is naive; nothing was stored.
        """
        moment = rejected.occurred_at
        if moment.tzinfo is not UTC:
            rejected = replace(rejected, occurred_at=require_aware(moment))
        self._append(self._store._rejected, rejected.instance_id, _detached(rejected))

    def lock_all(self, instance_ids: Iterable[str]) -> None:
        """Nothing to do: the unit holds the whole store from its start."""

    def emit(self, event: Event) -> None:
        """Keep ``event`` in the outbox, undone with the unit's other writes."""
        outbox = self._store._outbox
        outbox.append(replace(event, occurred_at=require_aware(event.occurred_at)))
        self._undo.append(outbox.pop)

    def _put_instance(self, current: Instance, moved: Instance) -> None:
        instances, live = self._store._instances, self._store._live
        instances[moved.id] = moved
        self._undo.append(lambda: instances.__setitem__(current.id, current))
        before, after = _live_slot(current), _live_slot(moved)
        if before == after:  # still live under the same reference, or never was: held alike
            return
        for slot, holder in ((before, None), (after, moved.id)):
            if slot is not None:
                self._set_live(live, slot, holder)

    def _set_live(self, live: dict[_Slot, str], slot: _Slot, holder: str | None) -> None:
        before = live.pop(slot, None)
        if holder is not None:
            live[slot] = holder
        self._undo.append(lambda: _restore(live, slot, before))

    def _append(self, table: dict[str, list[_Row]], instance_id: str, row: _Row) -> None:
        rows = table.setdefault(instance_id, [])
        rows.append(row)
        self._undo.append(rows.pop)

    def _remember_key(self, record: TransitionRecord) -> None:
        keys, key = self._store._keys, (record.instance_id, record.idempotency_key)
        keys[key] = record
        self._undo.append(lambda: keys.pop(key))


def _restore(live: dict[_Slot, str], slot: _Slot, holder: str | None) -> None:
    if holder is None:
        live.pop(slot, None)
    else:
        live[slot] = holder


def _live_slot(instance: Instance) -> _Slot | None:
    """The flow and reference a live instance holds; ``None`` for a final one or no reference.

    Non-final states always have a deadline and final ones never do, as the SQL store's
    partial unique index assumes.
    """
    if instance.deadline_at is None or instance.reference_no is None:
        return None
    return instance.flow, instance.reference_no


def _in_utc(instance: Instance) -> Instance:
    """``instance`` with its times in UTC, as a database gives them back.

    Raises:
        InvalidInstanceData: one of them is naive.
    """
    due = instance.deadline_at
    return replace(
        instance,
        created_at=require_aware(instance.created_at),
        updated_at=require_aware(instance.updated_at),
        deadline_at=None if due is None else require_aware(due),
    )


_Stored = TypeVar("_Stored", TransitionRecord, RejectedEvent)


def _detached(stored: _Stored) -> _Stored:
    """A copy whose payload shares nothing with the caller's, as a database row would not."""
    if stored.payload is None:
        return stored
    return replace(stored, payload=copy.deepcopy(dict(stored.payload)))


def _record_in_utc(record: TransitionRecord) -> TransitionRecord:
    moment = record.occurred_at
    if moment.tzinfo is UTC:
        return record
    return replace(record, occurred_at=require_aware(moment))


__all__ = ["MemoryStore", "MemoryUnit"]
