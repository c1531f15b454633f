"""Logging: every applied and refused event is one structured record; secrets never appear."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fsm import (
    ActorNotAllowed,
    Engine,
    FsmError,
    IdempotencyKeyReused,
    InvalidInstanceData,
    ManualClock,
    SqlStore,
    TransitionNotAllowed,
)
from fsm.flows import FLOWS

FIELDS = ("flow", "instance", "event", "from", "to", "actor", "reason")
SECRET = "mk-0123456789-DO-NOT-LOG"
TOKEN = "tok-ABCDEF-DO-NOT-LOG"
REPLY = {"tx_id": "TXOVO1", "reference_no": "ORD-1"}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    store = SqlStore(f"sqlite:///{tmp_path / 'log.sqlite3'}")
    store.create_schema()
    yield Engine(store, flows=FLOWS, clock=ManualClock(datetime(2026, 11, 23, 3, 0, tzinfo=UTC)))
    store.dispose()


def engine_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "fsm.engine"]


def fields(record: logging.LogRecord) -> dict[str, Any]:
    return {name: record.__dict__[name] for name in FIELDS}


def registered(engine: Engine) -> str:
    pid = engine.start("ewallet_payment", instance_id="pay-1", wallet="ovo", amount=1000).id
    engine.fire(pid, "send_registration", actor="merchant", idempotency_key="reg")
    engine.fire(
        pid, "accept_registration", actor="provider_response", idempotency_key="acc", payload=REPLY
    )
    return pid


def test_applied_event_is_logged_with_its_fields(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    pid = registered(engine)
    caplog.set_level(logging.INFO, logger="fsm.engine")
    engine.fire(pid, "request_payment", actor="merchant", idempotency_key="pay")
    (record,) = engine_records(caplog)
    assert record.levelno == logging.INFO
    assert fields(record) == {
        "flow": "ewallet_payment",
        "instance": "pay-1",
        "event": "request_payment",
        "from": "registered",
        "to": "payment_requested",
        "actor": "merchant",
        "reason": None,
    }


def test_duplicate_is_logged_as_absorbed(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    pid = registered(engine)
    caplog.set_level(logging.INFO, logger="fsm.engine")
    engine.fire(pid, "send_registration", actor="merchant", idempotency_key="reg")
    (record,) = engine_records(caplog)
    assert record.levelno == logging.INFO
    assert fields(record) == {
        "flow": "ewallet_payment",
        "instance": "pay-1",
        "event": "send_registration",
        "from": "checkout_requested",  # the first outcome's step
        "to": "registration_sent",
        "actor": "merchant",
        "reason": "duplicate",
    }


@pytest.mark.parametrize(
    ("event", "actor", "key", "reason"),
    [
        ("teleport", "merchant", "t", "unknown_event"),
        ("confirm_payment", "status_inquiry", "c", "not_allowed"),
        ("request_payment", "browser_callback", "r", "wrong_actor"),
        ("accept_registration", "provider_response", "reg", "key_reused"),
    ],
)
def test_refused_event_is_logged_with_its_reason(
    engine: Engine,
    caplog: pytest.LogCaptureFixture,
    event: str,
    actor: str,
    key: str,
    reason: str,
) -> None:
    pid = registered(engine)
    caplog.set_level(logging.INFO, logger="fsm.engine")
    with pytest.raises(FsmError):
        engine.fire(pid, event, actor=actor, idempotency_key=key)
    (record,) = engine_records(caplog)
    assert record.levelno == logging.WARNING
    assert fields(record) == {
        "flow": "ewallet_payment",
        "instance": "pay-1",
        "event": event,
        "from": "registered",
        "to": None,
        "actor": actor,
        "reason": reason,
    }


def test_guard_refusal_and_invalid_payload_are_logged(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    pid = registered(engine)
    engine.fire(pid, "request_payment", actor="merchant", idempotency_key="pay")
    other = engine.start("ewallet_payment", wallet="dana", amount=1).id
    engine.fire(other, "send_registration", actor="merchant", idempotency_key="reg")
    caplog.set_level(logging.INFO, logger="fsm.engine")
    with pytest.raises(FsmError):
        engine.fire(pid, "redirect_customer", actor="merchant", idempotency_key="redirect")
    with pytest.raises(FsmError):
        engine.fire(other, "accept_registration", actor="provider_response", idempotency_key="a")
    reasons = [(r.__dict__["instance"], r.__dict__["reason"]) for r in engine_records(caplog)]
    assert reasons == [("pay-1", "guard_refused"), (other, "invalid_payload")]


def test_stale_event_is_logged(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    pid = registered(engine)
    engine.fire(pid, "request_payment", actor="merchant", idempotency_key="pay")
    engine.fire(pid, "check_status", actor="timer", idempotency_key="chk")
    engine.fire(pid, "fail_payment", actor="status_inquiry", idempotency_key="fail")
    caplog.set_level(logging.INFO, logger="fsm.engine")
    with pytest.raises(FsmError):
        engine.fire(pid, "receive_notification", actor="provider_notification", idempotency_key="n")
    (record,) = engine_records(caplog)
    assert (record.__dict__["from"], record.__dict__["reason"]) == ("failed", "stale")


def test_secrets_never_reach_any_log_record(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, the database driver's included
    payload = {"merchantKey": SECRET, "body": {"merchantToken": TOKEN}, **REPLY}
    pid = engine.start("ewallet_payment", wallet="ovo", amount=1000).id
    steps: list[tuple[str, str, str, type[FsmError] | None]] = [
        ("send_registration", "merchant", "reg", None),
        ("send_registration", "merchant", "reg", None),  # duplicate
        ("accept_registration", "provider_response", "reg", IdempotencyKeyReused),
        ("confirm_payment", "status_inquiry", "c", TransitionNotAllowed),
        ("accept_registration", "browser_callback", "b", ActorNotAllowed),
        ("accept_registration", "provider_response", "acc", None),  # applies, binding tx_id
    ]
    for event, actor, key, error in steps:
        with pytest.raises(error) if error else nullcontext():
            engine.fire(pid, event, actor=actor, idempotency_key=key, payload=payload)
    with pytest.raises(InvalidInstanceData):  # not JSON, and the secret is in it
        engine.fire(
            pid,
            "request_payment",
            actor="merchant",
            idempotency_key="p",
            payload={"merchantKey": SECRET, "when": datetime.now(UTC)},
        )
    assert engine.get(pid).tx_id == REPLY["tx_id"]

    assert engine_records(caplog)  # the engine did log
    for record in caplog.records:
        text = " ".join(
            [record.getMessage(), repr(record.args), record.exc_text or ""]
            + [repr(value) for value in record.__dict__.values()]
        )
        assert SECRET not in text, record.name
        assert TOKEN not in text, record.name


def test_library_installs_only_a_null_handler() -> None:
    handlers = logging.getLogger("fsm").handlers
    assert len(handlers) == 1
    assert isinstance(handlers[0], logging.NullHandler)
    assert logging.getLogger("fsm.engine").handlers == []


def test_importing_fsm_leaves_logging_configuration_alone() -> None:
    script = (
        "import logging, fsm, fsm.engine, fsm.flows, fsm.definition.loading\n"
        "import fsm.store.sql, fsm.replay\n"
        "root = logging.getLogger()\n"
        "print(len(root.handlers), logging.getLevelName(root.level))\n"
        "print([type(h).__name__ for h in logging.getLogger('fsm').handlers])\n"
    )
    done = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.splitlines() == ["0 WARNING", "['NullHandler']"]
