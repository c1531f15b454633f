"""Building a :class:`~adapters.service.PaymentService`: its journals live beside its engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.service import PaymentService
from fsm import ConfigurationError, Engine, SqlStore
from fsm.flows import FLOWS
from tests.adapters.mock_nicepay import ServiceRig
from tests.adapters.values import CALLBACK_URL, NOTIFY_URL


def test_a_service_refuses_a_store_other_than_its_engines(rig: ServiceRig, tmp_path: Path) -> None:
    other = SqlStore(f"sqlite:///{tmp_path / 'other.sqlite3'}")
    other.create_schema()
    try:
        with pytest.raises(ConfigurationError, match="the store its engine keeps"):
            PaymentService(
                rig.engine,
                rig.client,
                store=other,
                notification_url=NOTIFY_URL,
                callback_url=CALLBACK_URL,
            )
    finally:
        other.dispose()


def test_the_engines_store_is_fixed_when_it_is_built(rig: ServiceRig, tmp_path: Path) -> None:
    engine = Engine(rig.engine.store, flows=FLOWS)
    assert engine.uses_store(rig.engine.store)
    assert not engine.uses_store(SqlStore(f"sqlite:///{tmp_path / 'x.sqlite3'}"))
    with pytest.raises(AttributeError):
        engine.store = rig.engine.store  # type: ignore[misc]
