"""The storage seam: what :class:`~fsm.engine.Engine` asks of a store, and what a unit signals.

A :class:`Store` holds instances, their logs and their refused events; a :class:`Unit` is one
transaction on it, which the engine opens for every event: it loads the instance, looks a key up,
applies the step or records the refusal, and the unit commits whole or rolls back whole.
:class:`~fsm.store.sql.SqlStore` keeps them in SQLite or PostgreSQL,
:class:`~fsm.store.memory.MemoryStore` in a dictionary. Both keep the same promises, which the
engine relies on instead of checking them itself:

- ``apply`` is a compare-and-set on the instance's version: a version that moved since ``load``
  raises :class:`~fsm.errors.ConcurrentTransition`;
- an idempotency key is logged at most once per instance: a second one raises
  :class:`KeyTaken`;
- at most one live instance (one with a deadline) of a flow holds a reference: binding another's
  raises :class:`ReferenceTaken`, and :meth:`Store.insert_instance` raises
  :class:`~fsm.errors.ReferenceInUse`;
- a time without a zone is refused with :class:`~fsm.errors.InvalidInstanceData`;
- lock contention the store gave up on raises :class:`Contention`, and the unit rolls back.

A caller may have writes of its own ride along with a step (:data:`Along`): the engine runs
them in the step's unit once the step is applied, so they commit if and only if it does. Only a
store with a database connection runs them; :class:`~fsm.store.memory.MemoryStore` refuses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import NamedTuple, Protocol, Self

from sqlalchemy import Connection

from fsm.events import Event
from fsm.model import Instance, RejectedEvent, TransitionRecord

Along = Callable[[Connection], None]
"""Writes of the caller's that ride along with a step, on the step's connection and in its
transaction (the rows of an adapter's tables beside the engine's, such as a journal entry); they
must not commit, roll back or close it."""


class StoredStep(NamedTuple):
    """The columns of a log row that verification needs, read without the payload."""

    instance_id: str
    seq: int
    event: str
    source: str
    dest: str
    actor: str
    flow_version: int
    fingerprint: str
    occurred_at: datetime | None = None
    """Read only when a time cut-off asks for it."""

    @property
    def payload(self) -> None:
        """A step read for verification carries no payload."""
        return None


class Unit(Protocol):
    """One transaction: ``with store.unit() as unit:`` commits on success, else rolls back."""

    def __enter__(self) -> Self:
        """Begin the transaction."""
        ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        """Commit, or roll back whole when the block raised."""
        ...

    def load(self, instance_id: str) -> Instance:
        """The instance as this transaction sees it.

        Raises:
            InstanceNotFound: nothing is stored under ``instance_id``.
        """
        ...

    def find_key(self, instance_id: str, key: str) -> TransitionRecord | None:
        """The transition already applied to the instance under ``key``, if any."""
        ...

    def apply(
        self,
        record: TransitionRecord,
        *,
        expected_version: int,
        deadline_at: datetime | None,
        bound: Mapping[str, str],
    ) -> Instance:
        """Move the instance to ``record.dest`` at version ``record.seq`` and log ``record``;
        returns the instance as moved.

        ``bound`` sets instance fields from the payload (see ``TransitionSpec.binds``).

        Raises:
            ConcurrentTransition: the version is no longer ``expected_version``.
            KeyTaken: the key is already logged for the instance.
            ReferenceTaken: a bound ``reference_no`` is another live instance's.
            InvalidInstanceData: a time is naive, or ``bound`` names a field no transition sets.
        """
        ...

    def reject(self, rejected: RejectedEvent) -> None:
        """Record an event that was not applied.

        Raises:
            InvalidInstanceData: its time is naive.
        """
        ...

    def lock_all(self, instance_ids: Iterable[str]) -> None:
        """Hold every given instance until the unit ends, before anything else is read."""
        ...

    def emit(self, event: Event) -> None:
        """Store ``event`` in the outbox, committed or rolled back with the unit's step.

        Raises:
            InvalidInstanceData: its time is naive.
        """
        ...

    def along(self, write: Along) -> None:
        """Run ``write`` on this unit's connection, committed or rolled back with the unit.

        Raises:
            StorageError: the database failed; the unit rolls back whole.
            ConfigurationError: the store has no database connection (a memory store).
        """
        ...


class Store(Protocol):
    """Flow instances, their logs and their refused events: what the engine stores and reads."""

    def insert_instance(self, instance: Instance) -> None:
        """Store a new instance.

        Raises:
            InstanceExists: an instance with that id is already stored.
            ReferenceInUse: a live instance of the flow has the same reference.
            InvalidInstanceData: one of its times is naive; nothing was stored.
        """
        ...

    def get(self, instance_id: str) -> Instance:
        """The stored instance.

        Raises:
            InstanceNotFound: nothing is stored under ``instance_id``.
        """
        ...

    def find(self, *, tx_id: str | None = None, reference_no: str | None = None) -> list[Instance]:
        """Instances with the given provider transaction id and/or reference, by id."""
        ...

    def history(self, instance_id: str) -> list[TransitionRecord]:
        """The instance's applied transitions in order (empty for an unknown id)."""
        ...

    def rejections(self, instance_id: str) -> list[RejectedEvent]:
        """The instance's refused events in the order they arrived."""
        ...

    def has_rejection(self, instance_id: str, idempotency_key: str) -> bool:
        """Whether a refused event under ``idempotency_key`` is recorded for the instance."""
        ...

    def live_ids(self, flow: str, *, flow_version: int) -> list[str]:
        """Ids of the unfinished instances of ``flow`` pinned to ``flow_version``, by id."""
        ...

    def unit(self) -> Unit:
        """A new transaction, begun when its ``with`` block is entered."""
        ...


__all__ = [
    "Along",
    "Store",
    "StoredStep",
    "Unit",
]
