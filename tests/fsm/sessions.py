"""Helpers for tests about a store's connections: its server sessions, and keeping several.

A test gives its store's connections an ``application_name`` of their own, so the server can end
exactly those sessions (as a restart ends them all) while other test runs share the server.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import create_engine, text

from fsm import SqlStore


class Sessions:
    """The server-side sessions of one store, found by their application name."""

    def __init__(self, name: str, admin_url: str) -> None:
        self.name = name
        self._admin = create_engine(admin_url)

    def backends(self) -> set[int]:
        """The process ids of the store's sessions on the server."""
        query = text("select pid from pg_stat_activity where application_name = :name")
        with self._admin.connect() as conn:
            return {int(pid) for pid in conn.execute(query, {"name": self.name}).scalars()}

    def count(self) -> int:
        return len(self.backends())

    def wait_for(self, count: int) -> bool:
        """Whether the store's sessions fall to ``count`` within ten seconds."""
        deadline = time.monotonic() + 10
        while self.count() != count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.count() == count

    def end_all(self) -> None:
        """End the store's sessions, as a server restart would, and wait until they are gone."""
        query = text(
            "select pg_terminate_backend(pid) from pg_stat_activity where application_name = :name"
        )
        with self._admin.connect() as conn:
            ended = conn.execute(query, {"name": self.name}).all()
        assert ended, "the store had no session to end"
        assert self.wait_for(0)

    def close(self) -> None:
        self._admin.dispose()


def keep_several(store: SqlStore, count: int) -> list[Any]:
    """Run ``count`` units at once, so the store keeps that many connections between units.

    Returns:
        The driver connection each unit ran on.
    """
    together = threading.Barrier(count)

    def hold_a_connection(_: int) -> Any:
        with store.unit() as unit:
            unit.history("nobody")  # the connection is in use ...
            together.wait(timeout=10)  # ... while every other unit holds its own
            return unit._connection

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(hold_a_connection, range(count)))
