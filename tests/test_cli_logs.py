"""Logs as fields: transitions and inbound requests carry the payment's flow, id, reference and
wallet with the step's event, states, actor and reason; ``--log-format json`` writes each record
as one JSON object, with no merchant key or token in any of them; ``serve`` logs at INFO."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.cli import build_parser
from adapters.cli._events import hide_sink_secrets
from adapters.cli._logs import JsonFormatter, TextFormatter, log_handler
from adapters.cli._serve import hide_configured_secrets
from adapters.inbound.asgi import NOTIFICATION_PATH
from fsm import REDACTED
from tests.adapters.e2e_rig import open_rig
from tests.adapters.inbound_rig import serving
from tests.cli_run import CREDENTIALS, engine_at, ewallet_fsm

STEP_FIELDS = ("flow", "payment_id", "reference", "wallet", "event", "from", "to", "actor")
TOKEN = "a1" * 32  # token-shaped: 64 hex digits


@contextmanager
def json_lines() -> Iterator[io.StringIO]:
    """Every record logged meanwhile, as the JSON formatter writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def parsed(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_a_paid_payment_logs_its_steps_and_requests_as_fields_without_secrets(
    tmp_path: Path,
) -> None:
    with open_rig(f"sqlite:///{tmp_path / 'logs.sqlite3'}") as rig, json_lines() as stream:
        started = rig.start("logged", "ovo")
        rig.browse(started)
        [delivery] = rig.deliveries(rig.ref("logged"), 1)
        payment = rig.engine.get(started.instance.id)
        key = rig.sim.config.merchant_key.get_secret_value()
    assert payment.state == "paid"

    text = stream.getvalue()
    lines = parsed(text)
    applied = [line for line in lines if line["message"] == "transition applied"]
    steps = [line for line in applied if line["flow"] == "ewallet_payment"]  # not the simulator's
    assert [line["to"] for line in steps][-1] == "paid"
    for line in steps:
        assert set(STEP_FIELDS) <= set(line), line
        assert (line["payment_id"], line["wallet"]) == (payment.id, "ovo")
    assert steps[-1]["reference"] == payment.reference_no
    assert steps[-1]["actor"] == "status_inquiry"
    answered = [line for line in lines if line["message"] == "inbound request answered"]
    assert sorted(line["endpoint"] for line in answered) == ["callback", "notification"]
    for inbound in answered:
        assert (inbound["status"], inbound["payment_id"]) == (200, payment.id)
        assert (inbound["reference"], inbound["wallet"]) == (payment.reference_no, "ovo")
    assert key not in text
    assert delivery.fields["merchantToken"] not in text
    assert re.search("[0-9a-f]{64}", text) is None  # the browser's step URL carried a token


def test_a_secret_named_field_and_a_token_shaped_value_are_blanked() -> None:
    with json_lines() as stream:
        logging.getLogger("adapters.example").warning(
            "answered with %s",
            TOKEN,
            extra={"merchant_token": "plain-secret-value", "reason": f"merchantToken={TOKEN}"},
        )
    [line] = parsed(stream.getvalue())
    assert line["merchant_token"] == REDACTED
    assert TOKEN not in stream.getvalue()
    assert (line["level"], line["logger"]) == ("WARNING", "adapters.example")


def test_reconcile_logs_json_lines_with_the_steps_it_took(db_url: str, tmp_path: Path) -> None:
    store, engine, clock = engine_at(db_url)
    pid = engine.start("ewallet_payment", instance_id="pay-json", wallet="ovo").id
    clock.advance(timedelta(seconds=1))
    store.dispose()
    done = ewallet_fsm(
        *("-v", "reconcile", "--once", "--log-format", "json", "--db", db_url),
        *("--nicepay-url", "http://127.0.0.1:9/nicepay"),  # nothing due asks NICEPAY
        cwd=tmp_path,
        env=CREDENTIALS,
    )
    assert done.code == 0, done.err
    lines = parsed(done.err)
    [step] = [line for line in lines if line["message"] == "transition applied"]
    assert (step["payment_id"], step["from"], step["actor"]) == (pid, "checkout_requested", "timer")
    assert CREDENTIALS["EWALLET_FSM_MERCHANT_KEY"] not in done.err


def test_a_text_line_is_redacted_too() -> None:
    record = logging.LogRecord(
        "httpx", logging.INFO, "", 0, "GET /pay?merchantToken=%s", (TOKEN,), None
    )
    line = TextFormatter().format(record)
    assert TOKEN not in line
    assert " INFO httpx: GET /pay?merchantToken=" in line
    assert REDACTED in line


def test_serve_logs_its_requests_as_json_lines_at_info_by_default(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'served.sqlite3'}"
    forged = {"tXid": "TX-NOT-OURS", "merchantToken": TOKEN}
    with serving("--db", db, "--log-format", "json", env=CREDENTIALS, verbose=False) as served:
        answer = httpx.post(served.url + NOTIFICATION_PATH, data=forged, timeout=10.0)
    assert 400 <= answer.status_code < 500  # refused: not a notification of ours
    err = served.output[1]
    lines = parsed(err)
    [answered] = [line for line in lines if line["message"] == "inbound request answered"]
    assert (answered["level"], answered["endpoint"], answered["status"]) == (
        "INFO",
        "notification",
        answer.status_code,
    )
    assert answered["outcome"] == "refused"
    assert TOKEN not in err
    assert CREDENTIALS["EWALLET_FSM_MERCHANT_KEY"] not in err
    assert not [line for line in lines if line["logger"].startswith("alembic")]  # theirs: ERROR


def test_serve_logs_at_info_and_as_text_unless_told() -> None:
    parser = build_parser()
    serve = parser.parse_args(["serve"])
    assert (serve.log_level, serve.log_format) == (logging.INFO, "text")
    reconcile = parser.parse_args(["reconcile", "--log-format", "json"])
    assert reconcile.log_format == "json"
    assert not hasattr(reconcile, "log_level")  # quiet unless -v


@contextmanager
def command_lines(log_format: str) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger with the handler a command gets, writing to a string instead of stderr."""
    handler = log_handler(log_format)
    stream = io.StringIO()
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    logger = logging.getLogger(f"adapters.example.{log_format}")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def test_the_configured_secrets_are_blanked_by_value_and_secret_fields_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    audit = "audit-secret-0123456789"
    monkeypatch.setenv("EWALLET_FSM_MERCHANT_KEY", "merchant-key-0123456789")
    monkeypatch.setenv("EWALLET_FSM_AUDIT_KEY", f"k1:{audit},k0:older-audit-secret-0123")
    for log_format in ("json", "text"):
        with command_lines(log_format) as (logger, stream):
            hide_configured_secrets(logger=logger)
            logger.warning(
                "NICEPAY said merchant-key-0123456789 and audit-secret-01 (cut short)",
                extra={
                    "audit_key": "k1",
                    "signature": "abcdef",
                    "api_key": "plain",
                    "webhook_secret": "s",
                    "call_key": "status:pay-1:3",
                    "reason": "older-audit-secret-0123 rotated",
                },
            )
        text = stream.getvalue()
        for secret in ("merchant-key-0123456789", "audit-secret-01", "older-audit-secret"):
            assert secret not in text, (log_format, text)
        assert text.count(REDACTED) >= 2  # the message's two; a JSON line's fields as well
        if log_format == "json":
            [line] = parsed(text)
            for name in ("audit_key", "signature", "api_key", "webhook_secret"):
                assert line[name] == REDACTED, name
            assert line["call_key"] == "status:pay-1:3"  # names a call, hides nothing
            assert line["message"] == f"NICEPAY said {REDACTED} and {REDACTED} (cut short)"


def test_the_webhook_secret_and_the_broker_password_are_blanked_by_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EWALLET_FSM_WEBHOOK_SECRET", "webhook-secret-0123456789")
    monkeypatch.setenv("EWALLET_FSM_AMQP_URL", "amqp://guest:broker-password-01@127.0.0.1/")
    with command_lines("json") as (logger, stream):
        hide_sink_secrets(logger=logger)
        logger.error("signing with webhook-secret-0123456789 for broker-password-01")
    [line] = parsed(stream.getvalue())
    assert line["message"] == f"signing with {REDACTED} for {REDACTED}"
