"""Fixtures the engine and persistence tests share: a manual clock, an engine, a second pool.

A module whose tests every store must pass alike runs them on each store by making
``any_store`` its ``store``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from fsm import Engine, ManualClock, MemoryStore, SqlStore, Store
from fsm.flows import FLOWS
from tests.conftest import AnyStore

T0 = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
"""Where every test's manual clock starts."""


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def engine(store: Store, clock: ManualClock) -> Engine:
    return Engine(store, flows=FLOWS, clock=clock)


@pytest.fixture
def other_store(store: AnyStore) -> Iterator[AnyStore]:
    """A second pool on the same database, as a second process would have (in memory: the
    same store, which a second process could not share)."""
    if isinstance(store, MemoryStore):
        yield store
        return
    other = SqlStore(store.url)
    yield other
    other.dispose()
