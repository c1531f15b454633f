"""A worker thread that runs callables at given times: delayed notifications, scripted customers."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

Job = Callable[[], None]


class Scheduler:
    """Runs jobs one at a time, each no earlier than its due time, on one daemon thread."""

    def __init__(self, name: str) -> None:
        """A stopped scheduler; call :meth:`start`."""
        self._name = name
        self._heap: list[tuple[float, int, Job]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the worker thread."""
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the worker after the job it is running; jobs still waiting are dropped."""
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def call_later(self, delay: float, job: Job) -> None:
        """Run ``job`` after ``delay`` seconds (0: as soon as the worker is free)."""
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + max(delay, 0.0), next(self._order), job))
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            job = self._next()
            if job is None:
                return
            try:
                job()
            except Exception:  # a broken job must not stop the worker
                logger.exception("scheduled job failed", extra={"worker": self._name})

    def _next(self) -> Job | None:
        with self._cond:
            while not self._stopped:
                if self._heap and self._heap[0][0] <= time.monotonic():
                    return heapq.heappop(self._heap)[2]
                timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                self._cond.wait(timeout)
            return None
