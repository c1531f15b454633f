"""Fixtures the engine and persistence tests share: a manual clock, an engine, a second pool."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from fsm import Engine, ManualClock, SqlStore
from fsm.flows import FLOWS

T0 = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
"""Where every test's manual clock starts."""


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def engine(store: SqlStore, clock: ManualClock) -> Engine:
    return Engine(store, flows=FLOWS, clock=clock)


@pytest.fixture
def other_store(store: SqlStore) -> Iterator[SqlStore]:
    """A second pool on the same database, as a second process would have."""
    other = SqlStore(store.url)
    yield other
    other.dispose()
