"""In-process listeners: code that runs right after a transition commits, in the same process.

For what must follow a step at once and may be lost with the process (metrics, cache
invalidation); what must not be lost goes through the outbox (:mod:`fsm.events`). A listener
is called after the transaction committed, so it never sees a step that was rolled back, and
whatever it raises is logged and swallowed: it can neither undo nor fail the transition.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from fsm.events import Event
from fsm.model import TransitionResult

logger = logging.getLogger(__name__)

Listener = Callable[[TransitionResult, Event | None], object]
"""Called with each applied transition, and the event it emitted (``None`` when it has none)."""


class Listeners:
    """The listeners registered on one engine, called in registration order."""

    def __init__(self) -> None:
        """No listeners yet."""
        self._lock = threading.Lock()
        self._listeners: tuple[Listener, ...] = ()

    def add(self, listener: Listener) -> Listener:
        """Call ``listener`` after each committed transition; returns it (usable as a decorator)."""
        with self._lock:
            self._listeners = (*self._listeners, listener)
        return listener

    def remove(self, listener: Listener) -> None:
        """Stop calling ``listener`` (nothing happens when it was not registered)."""
        with self._lock:
            self._listeners = tuple(known for known in self._listeners if known != listener)

    def __bool__(self) -> bool:
        """Whether any listener is registered."""
        return bool(self._listeners)

    def notify(self, applied: Iterable[tuple[TransitionResult, Event | None]]) -> None:
        """Call every listener with each committed transition; a listener's error is logged."""
        listeners = self._listeners
        for result, event in applied:
            for listener in listeners:
                try:
                    listener(result, event)
                except Exception:  # a listener never breaks the step that already committed
                    logger.exception(
                        "listener failed",
                        extra={
                            "instance": result.record.instance_id,
                            "event": result.record.event,
                            "listener": getattr(listener, "__qualname__", repr(listener)),
                        },
                    )


__all__ = ["Listener", "Listeners"]
