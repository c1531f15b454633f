"""``ewallet-fsm relay``, ``outbox`` and ``reconcile --sink``, run as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import update

from adapters.events import SIGNATURE_HEADER, verify_webhook
from fsm import ManualClock, SqlStore, SystemClock
from fsm.store.outbox import Delivery, Outbox
from fsm.store.tables import OUTBOX_TABLE
from tests.adapters.events_rig import event_engine, settle, webhook_receiver
from tests.cli_run import CREDENTIALS, ewallet_fsm
from tests.fsm.conftest import T0

SECRET = "whsec-cli-test"


def settled_store(db_url: str, payments: int = 1) -> tuple[SqlStore, list[str]]:
    store = SqlStore(db_url)
    store.create_schema()
    clock = ManualClock(T0)
    return store, settle(event_engine(store, clock), clock, payments)


def test_relay_once_sends_every_event_to_a_signed_webhook(db_url: str, tmp_path: Path) -> None:
    store, _ = settled_store(db_url, 2)
    env = {"EWALLET_FSM_WEBHOOK_SECRET": SECRET}
    with webhook_receiver() as (url, received):
        ran = ewallet_fsm(
            "relay", "--db", db_url, "--sink", f"webhook={url}", cwd=tmp_path, env=env
        )
    assert (ran.code, ran.out) == (0, "relay: 4 delivered, 0 to retry, 0 dead\n"), ran
    now = SystemClock().now()
    verified = [
        verify_webhook(body, h[SIGNATURE_HEADER], SECRET, now=now) for body, h in received.requests
    ]
    assert sorted(event.id for event in verified) == sorted(e.id for e in Outbox(store).events())
    assert SECRET not in ran.out + ran.err
    store.dispose()


def test_outbox_lists_dead_events_and_redelivers_one(db_url: str, tmp_path: Path) -> None:
    store, [pid] = settled_store(db_url)
    env = {"EWALLET_FSM_WEBHOOK_SECRET": SECRET}
    with webhook_receiver(statuses=[500]) as (url, _):
        sink = ["--sink", f"webhook={url}", "--max-attempts", "1"]
        relayed = ewallet_fsm("relay", "--db", db_url, *sink, cwd=tmp_path, env=env)
    assert relayed.out == "relay: 1 delivered, 0 to retry, 1 dead\n", relayed

    listed = ewallet_fsm("outbox", "--db", db_url, "--json", cwd=tmp_path)
    [dead] = listed.json()
    assert (dead["status"], dead["attempts"], dead["event"]["type"]) == ("dead", 1, "payment.paid")
    assert dead["last_error"] == "DeliveryFailed: answered 500"
    assert dead["event"]["payment_id"] == pid
    table = ewallet_fsm("outbox", "--db", db_url, cwd=tmp_path)
    assert dead["event"]["id"] in table.out
    assert "dead" in table.out

    again = ewallet_fsm("outbox", "--db", db_url, "--redeliver", dead["event"]["id"], cwd=tmp_path)
    assert again.code == 0, again
    assert [e.status for e in Outbox(store).entries(payment_id=pid)] == [
        Delivery.PENDING,
        Delivery.DELIVERED,
    ]
    unknown = ewallet_fsm("outbox", "--db", db_url, "--redeliver", "nope", cwd=tmp_path)
    assert "no event 'nope'" in unknown.assert_one_line_error()
    store.dispose()


def test_reconcile_with_a_sink_relays_after_its_pass(db_url: str, tmp_path: Path) -> None:
    store, [pid] = settled_store(db_url)
    ran = ewallet_fsm(
        "reconcile",
        "--db",
        db_url,
        "--sink",
        "log",
        "--nicepay-url",
        "http://127.0.0.1:9/nicepay",  # nothing due asks NICEPAY
        cwd=tmp_path,
        env=CREDENTIALS,
    )
    assert ran.code == 0, ran
    lines = ran.out.splitlines()
    printed = [json.loads(line) for line in lines if line.startswith("{")]
    assert [event["type"] for event in printed] == ["payment.paid", "payment.confirmed"]
    assert {event["payment_id"] for event in printed} == {pid}
    assert "relay: 2 delivered, 0 to retry, 0 dead" in lines
    assert Outbox(store).count(Delivery.DELIVERED) == 2
    store.dispose()


def test_relay_refuses_an_unknown_sink_or_a_missing_secret(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    unknown = ewallet_fsm("relay", "--db", db, "--sink", "kafka", cwd=tmp_path)
    assert "expected log, webhook=URL or rabbitmq" in unknown.assert_one_line_error()
    secretless = ewallet_fsm(
        "relay", "--db", db, "--sink", "webhook=http://127.0.0.1:9/", cwd=tmp_path
    )
    assert "EWALLET_FSM_WEBHOOK_SECRET" in secretless.assert_one_line_error()


def test_outbox_lists_an_unreadable_event_as_dead_and_will_not_redeliver_it(
    db_url: str, tmp_path: Path
) -> None:
    store, [pid] = settled_store(db_url)
    [paid, _] = Outbox(store).entries(payment_id=pid)
    with store.transaction() as conn:
        conn.execute(
            update(OUTBOX_TABLE).where(OUTBOX_TABLE.c.id == paid.event_id).values(body="{not json")
        )
    relayed = ewallet_fsm("relay", "--db", db_url, "--sink", "log", cwd=tmp_path)
    assert relayed.out.endswith("relay: 1 delivered, 0 to retry, 1 dead\n"), relayed

    [dead] = ewallet_fsm("outbox", "--db", db_url, "--json", cwd=tmp_path).json()
    assert (dead["event_id"], dead["event"], dead["status"]) == (paid.event_id, None, "dead")
    assert dead["last_error"] == "unreadable: the stored body is not an event"
    table = ewallet_fsm("outbox", "--db", db_url, cwd=tmp_path).out.splitlines()
    [row] = [line for line in table if paid.event_id in line]
    assert "(unreadable)" in row
    assert "dead" in row
    assert "unreadable: the stored body is not an event" in row

    again = ewallet_fsm("outbox", "--db", db_url, "--redeliver", paid.event_id, cwd=tmp_path)
    assert "cannot be redelivered: its stored body is not an event" in again.assert_one_line_error()
    assert Outbox(store).entries(payment_id=pid)[0].status == Delivery.DEAD
    store.dispose()
