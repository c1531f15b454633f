"""Where the relay sends events: a sink takes one event, or raises so that it is tried again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from fsm.events import Event


class Sink(Protocol):
    """Takes events from the relay: returns once the event is safely handed over, else raises.

    Whatever it raises counts as a failed attempt: the relay tries again after a backoff, and
    marks the event dead after its last attempt. A sink may be handed the same event again (a
    relay that crashed after delivering, before recording it): its consumer deduplicates by
    :attr:`~fsm.events.Event.id`.
    """

    name: str
    """How the relay names the sink in logs and in a failed attempt (never a credential)."""

    def deliver(self, event: Event) -> None:
        """Hand ``event`` over, or raise."""
        ...


class CallableSink:
    """A Python callable as a sink: for a consumer in the relay's own process."""

    def __init__(self, handler: Callable[[Event], object], *, name: str = "callable") -> None:
        """Call ``handler`` with each event; what it raises fails the attempt."""
        self._handler = handler
        self.name = name

    def deliver(self, event: Event) -> None:
        """Call the handler."""
        self._handler(event)


__all__ = ["CallableSink", "Sink"]
