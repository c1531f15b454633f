"""Fixtures the notification tests share: a service on a fake NICEPAY, and its handler."""

from __future__ import annotations

import pytest

from adapters.inbound.handler import NotificationHandler
from fsm.store.sql import SqlStore
from tests.adapters.nicepay_fake import ServiceRig, service_rig


@pytest.fixture
def rig(store: SqlStore) -> ServiceRig:
    return service_rig(store)


@pytest.fixture
def handler(rig: ServiceRig) -> NotificationHandler:
    return NotificationHandler(rig.service)
