"""Bounded retry of a lost compare-and-set race.

A :class:`~fsm.errors.ConcurrentTransition` means another writer moved the instance between our
read and our write; reloading and firing again is safe because the idempotency key makes a
repeat a no-op. The policy is bounded: after ``attempts`` tries the error reaches the caller.
Delays grow exponentially from ``base_delay`` up to ``max_delay`` with full jitter, so writers
that collided once do not collide again in lockstep. On PostgreSQL the row lock makes retries
rare; on SQLite they happen when two processes read the same version.
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
