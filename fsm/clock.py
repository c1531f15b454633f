"""Time sources. The engine reads time only through a :class:`Clock`, so tests can move it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

from fsm.errors import InvalidInstanceData


class Clock(Protocol):
    """Anything that tells the current time as a timezone-aware UTC datetime."""

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The host's clock, in UTC."""

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to; for tests and replays of scripted runs."""

    def __init__(self, start: datetime) -> None:
        self._now = require_aware(start)

    def now(self) -> datetime:
        """The clock's current time."""
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward by ``delta`` and return the new time."""
        self._now += delta
        return self._now


def require_aware(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is refused because its zone is a guess."""
    if moment.tzinfo is UTC:  # already what is asked: spare a conversion on the hot path
        return moment
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInstanceData(f"naive datetime {moment.isoformat()} has no timezone")
    return moment.astimezone(UTC)


def as_utc(moment: datetime | None) -> datetime | None:
    """A time read back from a database, in UTC; a naive one is taken to be UTC already.

    Both databases hold UTC: SQLite as text with no offset, PostgreSQL as ``timestamptz``.
    """
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
