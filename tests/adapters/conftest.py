"""Fixtures the adapter tests share: NICEPAY (the simulator in-process), a service, its handler."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.inbound.handler import NotificationHandler
from fsm.store.sql import SqlStore
from tests.adapters.mock_nicepay import Nicepay, ServiceRig, open_nicepay, service_rig
from tests.adapters.worked import WorkedHandler


@pytest.fixture
def nicepay() -> Iterator[Nicepay]:
    with open_nicepay() as opened:
        yield opened


@pytest.fixture
def rig(store: SqlStore, nicepay: Nicepay) -> ServiceRig:
    return service_rig(store, nicepay)


@pytest.fixture
def handler(rig: ServiceRig) -> NotificationHandler:
    """The handler, its requests' status checks run by a worker before it answers."""
    return WorkedHandler(rig.service)
