"""Bounded retry of a lost race: what :meth:`fsm.Engine.fire_with_retry` does.

**What is retried.** :class:`~fsm.errors.ConcurrentTransition` and nothing else; a refusal is an
answer, not a failure. The engine raises it when the compare-and-set found the version moved
(another writer applied a step between our read and our write, which on SQLite is not locked),
when a racing writer logged the same idempotency key first, and when the database gave up on a
lock: SQLite's ``database is locked`` after its 30 s busy timeout, PostgreSQL's ``deadlock
detected`` or ``could not serialize``. Each time the whole unit rolled back, so firing again is
safe: it reloads, and a key applied meanwhile comes back as a duplicate, an answer for a payment
settled meanwhile as a stale event.

**The default policy** (:data:`DEFAULT_RETRY`): 8 attempts. After failed attempt ``n`` (from 0)
it sleeps a time drawn uniformly from ``[0, min(max_delay, base_delay * 2**n)]`` with
``base_delay`` 2 ms and ``max_delay`` 200 ms: exponential backoff with full jitter, so writers
that collided once do not collide again in lockstep. The seven sleeps add up to 0.254 s at most.

**Why bounded.** A lost race means another writer made progress on that instance, so the next
attempt normally succeeds. In the multi-process race test (``tests/fsm/test_multiprocess.py``:
four processes delivering every event of 40 payments at the same moment) SQLite loses several
hundred races per run and no firing needs more than 2 attempts; on PostgreSQL the row lock
(``SELECT ... FOR UPDATE``) queues the writers and none loses a race at all. Failing on and on
therefore means something else is wrong (a writer holding the lock, a database past its
capacity), and retrying without end would only hide it while callers pile up.

**When it is exhausted** the caller gets the last ``ConcurrentTransition`` (``retryable`` is
true) and nothing of that call is stored: no transition, no rejection. Deliver the event again
later with the same idempotency key; the payment is not stuck meanwhile, because its state's
stored deadline schedules the next status check. On SQLite each attempt may first wait out the
busy timeout, so the worst case before the error is ``attempts`` times 30 s; on PostgreSQL a
writer waits for the row lock as long as the holder's transaction lasts (a unit does no I/O).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from fsm.errors import ConcurrentTransition

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a lost race."""

    attempts: int = 8
    base_delay: float = 0.002
    max_delay: float = 0.2

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"a retry policy needs at least one attempt, not {self.attempts}")
        if self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ValueError("delays must satisfy 0 <= base_delay <= max_delay")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based), with full jitter."""
        ceiling = min(self.max_delay, self.base_delay * 2**attempt)
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography


DEFAULT_RETRY = RetryPolicy()


def retry_concurrent(
    call: Callable[[], T],
    policy: RetryPolicy = DEFAULT_RETRY,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``call``, retrying it on :class:`ConcurrentTransition` at most ``policy.attempts`` times.

    Raises:
        ConcurrentTransition: the last attempt lost its race too.
    """
    for attempt in range(policy.attempts - 1):
        try:
            return call()
        except ConcurrentTransition:
            sleep(policy.delay(attempt))
    return call()
