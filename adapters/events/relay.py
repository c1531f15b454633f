"""The relay: delivers the outbox's events to a sink, at least once, in order per payment.

Each round claims a batch of due events (:class:`~fsm.store.outbox.Outbox`; on PostgreSQL
``FOR UPDATE SKIP LOCKED``, so replicas claim different events and each goes out once per
attempt), hands each to the sink, and records the outcome: delivered, or failed and due again
after an exponential backoff, or dead after ``max_attempts``. A relay that dies between
delivering and recording leaves the event claimed until its lease lapses; another relay then
delivers it again, hence "at least once" and the consumer's deduplication by event id.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from adapters.events.sinks import Sink
from adapters.telemetry import ServiceTelemetry, default_telemetry
from fsm.clock import Clock, SystemClock
from fsm.store.leases import claim_owner
from fsm.store.outbox import Outbox, OutboxEntry
from fsm.store.sql import SqlStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """How long a failed event waits: ``first``, doubling each attempt, at most ``longest``;
    after ``max_attempts`` attempts in all it is dead."""

    first: timedelta = timedelta(seconds=5)
    longest: timedelta = timedelta(hours=1)
    max_attempts: int = 12

    def retry_at(self, now: datetime, attempts: int) -> datetime | None:
        """When to try again after ``attempts`` failed attempts; ``None`` once it is dead."""
        if attempts >= self.max_attempts:
            return None
        wait: timedelta = min(self.first * 2 ** (attempts - 1), self.longest)
        return now + wait


@dataclass(frozen=True)
class RelayRound:
    """What one round did."""

    delivered: int = 0
    retried: int = 0
    dead: int = 0

    def __add__(self, other: RelayRound) -> RelayRound:
        """Both rounds' counts added up."""
        return RelayRound(
            self.delivered + other.delivered, self.retried + other.retried, self.dead + other.dead
        )

    @property
    def claimed(self) -> int:
        """Events the round claimed."""
        return self.delivered + self.retried + self.dead


class Relay:
    """Delivers one store's outbox to one sink."""

    def __init__(
        self,
        store: SqlStore,
        sink: Sink,
        *,
        clock: Clock | None = None,
        backoff: Backoff | None = None,
        batch: int = 100,
        lease: timedelta = timedelta(minutes=1),
        owner: str | None = None,
        telemetry: ServiceTelemetry | None = None,
    ) -> None:
        """Relay ``store``'s events to ``sink``, counting outcomes on ``telemetry`` (by default
        the global OpenTelemetry providers).

        A round sends only while less than half of ``lease`` has passed since its claim: the
        rest of a batch a slow sink held up is left to lapse, so that no event is sent on a
        claim another relay may have taken over (give it longer than one delivery may take).
        """
        self.outbox = Outbox(store)
        self.sink = sink
        self.clock: Clock = clock or SystemClock()
        self.backoff = backoff or Backoff()
        self.batch = batch
        self.lease = lease
        self.owner = owner or claim_owner("relay")
        self.telemetry = telemetry or default_telemetry()

    def run_once(self) -> RelayRound:
        """Claim one batch of due events and deliver each while the claim is young; what
        happened to them."""
        started = self.clock.now()
        claimed = self.outbox.claim(started, owner=self.owner, lease=self.lease, limit=self.batch)
        delivered = retried = dead = 0
        for entry in claimed:
            if self.clock.now() - started >= self.lease / 2:
                # A slow sink: what is left goes out once its claim lapses, from any relay,
                # rather than from this one while another may have claimed it too.
                break
            outcome = self._deliver(entry)
            self.telemetry.relayed(self.sink.name, outcome)
            delivered += outcome == "delivered"
            retried += outcome == "retried"
            dead += outcome == "dead"
        return RelayRound(delivered, retried, dead)

    def drain(self, *, rounds: int = 1000) -> RelayRound:
        """Run rounds until one claims nothing (or ``rounds`` ran); the totals."""
        total = RelayRound()
        for _ in range(rounds):
            done = self.run_once()
            if not done.claimed:
                break
            total = RelayRound(
                total.delivered + done.delivered,
                total.retried + done.retried,
                total.dead + done.dead,
            )
        return total

    def run(self, stop: threading.Event, *, interval: float = 1.0) -> None:
        """Run rounds until ``stop`` is set, waiting ``interval`` seconds after an idle one."""
        while not stop.is_set():
            try:
                claimed = self.run_once().claimed
            except Exception:  # a lost database must not end the loop; the next round retries
                logger.exception("relay round failed", extra={"sink": self.sink.name})
                claimed = 0
            if not claimed:
                stop.wait(interval)

    def _deliver(self, entry: OutboxEntry) -> str:
        event = entry.event
        if event is None:  # unreadable: the claim marked it dead, listed for a person
            return "dead"
        try:
            self.sink.deliver(event)
        except Exception as error:  # any failure of the sink is a failed attempt
            return self._failed(entry, error)
        self.outbox.delivered(event.id, owner=self.owner, now=self.clock.now())
        logger.info(
            "event delivered",
            extra={"event_id": event.id, "type": event.type, "sink": self.sink.name},
        )
        return "delivered"

    def _failed(self, entry: OutboxEntry, error: Exception) -> str:
        attempts = entry.attempts + 1
        retry_at = self.backoff.retry_at(self.clock.now(), attempts)
        reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        self.outbox.failed(entry.event_id, owner=self.owner, error=reason, retry_at=retry_at)
        outcome = "retried" if retry_at is not None else "dead"
        logger.warning(
            "event not delivered",
            extra={
                "event_id": entry.event_id,
                "sink": self.sink.name,
                "attempts": attempts,
                "outcome": outcome,
                "reason": reason,
            },
        )
        return outcome


__all__ = ["Backoff", "Relay", "RelayRound"]
