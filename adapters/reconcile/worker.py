"""The status worker: runs the status checks inbound requests asked for, off the request path.

Each round claims a batch of due work (:class:`~adapters.reconcile.work.StatusWork`), runs each
check through the payment service while the claim is young, and records the outcome: done, or
failed and due again after a backoff, or abandoned after ``max_attempts`` (the payment's
status-check deadline still asks then). A worker that stops while it holds work leaves it
claimed until the lease lapses; another worker then runs it. Within a lease no two workers, on
any replica, run the same work.

``ewallet-fsm reconcile`` runs one after each pass, ``ewallet-fsm relay --status-checks`` after
each round, and ``ewallet-fsm serve`` in a thread of its own unless told not to.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from adapters.errors import CallKeyTaken, ProviderError
from adapters.events.relay import Backoff
from adapters.reconcile.status import StatusChecks
from adapters.reconcile.work import StatusWork, StatusWorkItem
from adapters.telemetry import ServiceTelemetry, linked_span
from fsm.errors import FsmError
from fsm.store.leases import claim_owner

logger = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(minutes=2)
"""How long a worker holds a check: longer than an inquiry with its retries may take."""


CHECK_BACKOFF = Backoff(first=timedelta(seconds=2), longest=timedelta(minutes=5), max_attempts=6)
"""How long a failed check waits (doubling each attempt) and when it is abandoned to the
payment's status-check deadline: a few attempts, since that deadline keeps asking."""


@dataclass(frozen=True)
class WorkRound:
    """What one round, or several, did."""

    done: int = 0
    retried: int = 0
    abandoned: int = 0

    def __add__(self, other: WorkRound) -> WorkRound:
        """Both rounds' counts added up."""
        return WorkRound(
            self.done + other.done,
            self.retried + other.retried,
            self.abandoned + other.abandoned,
        )

    @property
    def claimed(self) -> int:
        """Checks the round ran."""
        return self.done + self.retried + self.abandoned


class StatusCheckService(StatusChecks, Protocol):
    """What the worker needs of the payment service (:class:`~adapters.service.PaymentService`)."""

    @property
    def status_work(self) -> StatusWork:
        """The status checks requested of it."""
        ...


class StatusWorker:
    """Runs one payment service's requested status checks."""

    def __init__(
        self,
        service: StatusCheckService,
        *,
        backoff: Backoff = CHECK_BACKOFF,
        batch: int = 20,
        lease: timedelta = DEFAULT_LEASE,
        owner: str | None = None,
        telemetry: ServiceTelemetry | None = None,
    ) -> None:
        """Run the checks requested of ``service`` (a :class:`~adapters.PaymentService`).

        Each check runs in a span of its own linked to the span of the request that asked for
        it, sent to ``telemetry`` (by default the global OpenTelemetry providers).

        A round starts a check only while less than half of ``lease`` has passed since its
        claim: the rest of a batch slow inquiries held up lapses to any worker, instead of being
        asked about on a claim another worker may have taken over.
        """
        self.service = service
        self.work = service.status_work
        self.backoff = backoff
        self.batch = batch
        self.lease = lease
        self.owner = owner or claim_owner("status")
        self.telemetry = telemetry

    def run_once(self) -> WorkRound:
        """Claim one batch of due checks and run each while the claim is young."""
        clock = self.service.engine.clock
        started = clock.now()
        claimed = self.work.claim(started, owner=self.owner, lease=self.lease, limit=self.batch)
        total = WorkRound()
        for item in claimed:
            if clock.now() - started >= self.lease / 2:
                break  # left to lapse: see __init__
            total += self._run(item)
        return total

    def drain(self, *, rounds: int = 1000) -> WorkRound:
        """Run rounds until one claims nothing due (or ``rounds`` ran); the totals."""
        total = WorkRound()
        for _ in range(rounds):
            done = self.run_once()
            if not done.claimed:
                break
            total += done
        return total

    def run(self, stop: threading.Event, *, interval: float = 0.2) -> None:
        """Run rounds until ``stop`` is set, waiting ``interval`` seconds after an idle one."""
        while not stop.is_set():
            try:
                claimed = self.run_once().claimed
            except Exception:  # a lost database must not end the loop; the next round retries
                logger.exception("status work round failed")
                claimed = 0
            if not claimed:
                stop.wait(interval)

    @contextmanager
    def running(self, *, interval: float = 0.2) -> Iterator[threading.Event]:
        """Run rounds in a thread of their own while the block runs (:meth:`run`); the event
        that stops them early. The thread is stopped and joined when the block ends."""
        stop = threading.Event()
        thread = threading.Thread(
            target=self.run, args=(stop,), kwargs={"interval": interval}, daemon=True
        )
        thread.start()
        try:
            yield stop
        finally:
            stop.set()
            thread.join(timeout=self.lease.total_seconds())

    def _run(self, item: StatusWorkItem) -> WorkRound:
        try:
            with linked_span("status check", item.trace_parent, telemetry=self.telemetry):
                self.service.check_status(
                    item.instance_id, tx_id_hint=item.tx_id_hint, call_key=item.call_key
                )
        except CallKeyTaken:  # another request, on any replica, asked under this key already
            logger.info(
                "status check already asked",
                extra={"instance": item.instance_id, "call_key": item.call_key},
            )
        except (ProviderError, FsmError) as error:  # NICEPAY, or the database, failed it
            return self._failed(item, error)
        self.work.done(item.id, owner=self.owner, now=self.service.engine.clock.now())
        return WorkRound(done=1)

    def _failed(self, item: StatusWorkItem, error: Exception) -> WorkRound:
        attempts = item.attempts + 1
        now = self.service.engine.clock.now()
        retry_at = self.backoff.retry_at(now, attempts)
        reason = type(error).__name__
        self.work.failed(item.id, owner=self.owner, error=reason, now=now, retry_at=retry_at)
        logger.warning(
            "status check failed",
            extra={
                "instance": item.instance_id,
                "attempts": attempts,
                "outcome": "retried" if retry_at else "abandoned",
                "reason": reason,
            },
        )
        return WorkRound(retried=1) if retry_at else WorkRound(abandoned=1)


__all__ = ["CHECK_BACKOFF", "DEFAULT_LEASE", "StatusCheckService", "StatusWorker", "WorkRound"]
