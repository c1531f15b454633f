"""The engine's units with the outbox, listeners and telemetry attached, kept out of the engine.

:class:`Tap` hands the engine its store's units unchanged while nothing listens, no event
types are set and no metrics are collected. Otherwise each unit is wrapped: an applied transition
whose target state has an event type writes its :class:`~fsm.events.Event` through the same unit
(so it commits or rolls back with the step), and once the unit has committed the telemetry and
the listeners hear of every step it applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Self

from fsm.events import Event, EventTypes, event_of
from fsm.listeners import Listeners
from fsm.model import Instance, RejectedEvent, TransitionRecord, TransitionResult
from fsm.store.protocol import Along, Store, Unit
from fsm.telemetry import StepTelemetry


class Tap:
    """Where the engine gets its units: the store's, with events and listeners attached."""

    def __init__(
        self, store: Store, types: EventTypes | None, telemetry: StepTelemetry | None = None
    ) -> None:
        """Attach ``types`` (none: no events are written) to the units of ``store``, and
        ``telemetry`` (none: nothing is measured)."""
        self.store = store
        self.types: EventTypes = {flow: dict(kinds) for flow, kinds in (types or {}).items()}
        self.listeners = Listeners()
        self.telemetry = telemetry

    def unit(self) -> Unit:
        """A unit of the store; wrapped when events, listeners or telemetry see its steps."""
        telemetry = self.telemetry
        if telemetry is not None and not telemetry.measuring:
            telemetry = None
        if not self.types and not self.listeners and telemetry is None:
            return self.store.unit()
        return TappedUnit(self.store.unit(), self.types, self.listeners, telemetry)


class TappedUnit:
    """A store's unit that writes each applied step's event and tells the listeners on commit."""

    __slots__ = ("_applied", "_before", "_inner", "_listeners", "_seen", "_telemetry", "_types")

    def __init__(
        self,
        inner: Unit,
        types: EventTypes,
        listeners: Listeners,
        telemetry: StepTelemetry | None = None,
    ) -> None:
        """Wrap ``inner``."""
        self._inner = inner
        self._types = types
        self._listeners = listeners
        self._telemetry = telemetry
        self._seen: dict[str, Instance] = {}
        self._applied: list[tuple[TransitionResult, Event | None]] = []
        self._before: list[Instance] = []

    def __enter__(self) -> Self:
        """Begin the inner unit."""
        self._inner.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        """End the inner unit; once it committed, tell the telemetry and the listeners."""
        self._inner.__exit__(kind, error, trace)
        if error is None and self._applied:
            if self._telemetry is not None:
                steps = zip(self._before, (result for result, _ in self._applied), strict=True)
                self._telemetry.applied(steps)
            self._listeners.notify(self._applied)

    def load(self, instance_id: str) -> Instance:
        """The instance, remembered so that its step's event can name it."""
        instance = self._inner.load(instance_id)
        self._seen[instance.id] = instance
        return instance

    def find_key(self, instance_id: str, key: str) -> TransitionRecord | None:
        """As the inner unit."""
        return self._inner.find_key(instance_id, key)

    def apply(
        self,
        record: TransitionRecord,
        *,
        expected_version: int,
        deadline_at: datetime | None,
        bound: Mapping[str, str],
    ) -> Instance:
        """Apply the step, then write its event in the same transaction."""
        moved = self._inner.apply(
            record, expected_version=expected_version, deadline_at=deadline_at, bound=bound
        )
        before = self._seen[record.instance_id]
        self._seen[moved.id] = moved
        event = event_of(self._types, before, moved, record)
        if event is not None:
            self._inner.emit(event)
        self._applied.append((TransitionResult(record, moved), event))
        self._before.append(before)
        return moved

    def reject(self, rejected: RejectedEvent) -> None:
        """As the inner unit."""
        self._inner.reject(rejected)

    def lock_all(self, instance_ids: Iterable[str]) -> None:
        """As the inner unit."""
        self._inner.lock_all(instance_ids)

    def emit(self, event: Event) -> None:
        """As the inner unit."""
        self._inner.emit(event)

    def along(self, write: Along) -> None:
        """As the inner unit."""
        self._inner.along(write)


__all__ = ["Tap", "TappedUnit"]
