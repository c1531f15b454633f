"""Degrading clearly: database faults, a store ``serve`` cannot write, stalled bodies, proxies.

A database fault while a notification or a browser return is handled is answered 503 with
``Retry-After`` and a short JSON body naming ``StorageUnavailable``, never a bare 500 or the
driver's words: on a real read-only SQLite file, a SQLite file another connection holds locked,
a PostgreSQL session in read-only mode, and PostgreSQL backends ended (``pg_terminate_backend``)
while the request waits for a row lock. Once the fault is gone, the same request (NICEPAY's
redelivery) is applied. ``serve`` refuses to start on a store it cannot write, in one line. A
body that stalls is answered 408 and recorded; ``--allow-from`` believes ``X-Forwarded-For``
only from a ``--trusted-proxy``.
"""

from __future__ import annotations

import sqlite3
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Connection, create_engine, text

from adapters.inbound.asgi import CALLBACK_PATH, NOTIFICATION_PATH, NotificationApp
from adapters.inbound.journal import InboundJournal
from adapters.simulator import serve_app
from fsm.errors import StorageUnavailable
from fsm.model import Instance
from fsm.store.sql import SqlStore
from tests.adapters.inbound_rig import free_port, run_cli, send_partial, serving
from tests.adapters.mock_nicepay import Nicepay, ServiceRig, service_rig
from tests.adapters.values import IMID, KEY_TEXT, payment_order
from tests.adapters.values import signed_notification as notification
from tests.adapters.worked import WorkedHandler
from tests.conftest import postgres_url_or_skip

ENV = {"EWALLET_FSM_IMID": IMID, "EWALLET_FSM_MERCHANT_KEY": KEY_TEXT}
READ_ONLY_PG = "-cdefault_transaction_read_only%3Don%20"
"""Put before a PostgreSQL URL's ``options``: every transaction of the session is read-only."""


def registered(rig: ServiceRig) -> Instance:
    """A DANA payment registered at the rig's NICEPAY."""
    return rig.service.start_payment(payment_order("dana", "ORD-D"), payment_id="pay-d").instance


@contextmanager
def endpoints(rig: ServiceRig) -> Iterator[httpx.Client]:
    """The rig's endpoints served on loopback, and a client for them."""
    app = NotificationApp(WorkedHandler(rig.service))
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=30.0) as http:
        yield http


def assert_unavailable(response: httpx.Response) -> None:
    """503, asking to come back later, in a few words of our own."""
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "30"
    body = response.json()
    assert set(body) == {"error", "message"}
    assert body["error"] == "StorageUnavailable"
    assert len(response.text) < 200
    for driver_word in ("sqlite", "psycopg", "readonly", "read-only", "locked", "terminat", "SQL"):
        assert driver_word not in response.text


def hit_both(http: httpx.Client, payment: Instance) -> None:
    """A genuine notification and a browser return for ``payment``, both refused for now."""
    assert_unavailable(http.post(NOTIFICATION_PATH, data=notification(payment)))
    assert_unavailable(http.get(CALLBACK_PATH, params={"tXid": payment.tx_id}))


# --- database faults answer 503 ------------------------------------------------------------------


def read_only(db_url: str) -> str:
    """``db_url`` opened read-only: SQLite's ``mode=ro``, or a read-only PostgreSQL session."""
    if db_url.startswith("sqlite:///"):
        return f"sqlite:///file:{db_url.removeprefix('sqlite:///')}?mode=ro&uri=true"
    return db_url.replace("options=", "options=" + READ_ONLY_PG)


def test_a_read_only_database_answers_503(db_url: str, nicepay: Nicepay) -> None:
    writable = SqlStore(db_url)
    writable.create_schema()
    payment = registered(service_rig(writable, nicepay))
    writable.dispose()
    file = Path(db_url.removeprefix("sqlite:///"))
    if db_url.startswith("sqlite"):
        file.chmod(stat.S_IRUSR | stat.S_IRGRP)  # and opened read-only, which binds root too
    store = SqlStore(read_only(db_url))

    with endpoints(service_rig(store, nicepay)) as http:
        hit_both(http, payment)
    with pytest.raises(StorageUnavailable, match=r"cannot write to the database: .*read"):
        store.check_writable()
    store.dispose()

    if db_url.startswith("sqlite"):
        file.chmod(stat.S_IRUSR | stat.S_IWUSR)
    after = SqlStore(db_url)
    assert after.get(payment.id).version == payment.version
    assert InboundJournal(after).latest() == []
    after.dispose()


def test_a_locked_sqlite_file_answers_503_and_the_redelivery_is_applied(
    tmp_path: Path, nicepay: Nicepay
) -> None:
    path = tmp_path / "shop.sqlite3"
    store = SqlStore(f"sqlite:///{path}", sqlite_busy_timeout=0.1)
    store.create_schema()
    rig = service_rig(store, nicepay)
    payment = registered(rig)
    other = sqlite3.connect(path, isolation_level=None)

    with endpoints(rig) as http:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        started = time.monotonic()
        hit_both(http, payment)
        assert time.monotonic() - started < 20  # the engine's bounded retries, then 503
        other.execute("ROLLBACK")

        redelivered = http.post(NOTIFICATION_PATH, data=notification(payment))
        assert redelivered.status_code == 200
        assert rig.engine.get(payment.id).state == "payment_pending"  # asked, and still pending
    other.close()
    assert [a.status_code for a in rig.service.inbound.latest()] == [200]
    store.dispose()


def test_ended_postgresql_backends_answer_503_and_the_redelivery_is_applied(
    postgres_schema_url: str, nicepay: Nicepay
) -> None:
    name = f"ewallet-fsm-degrade-{uuid.uuid4().hex[:12]}"
    store = SqlStore(f"{postgres_schema_url}&application_name={name}")
    store.create_schema()
    rig = service_rig(store, nicepay)
    payment = registered(rig)
    admin = create_engine(postgres_url_or_skip())
    schema = postgres_schema_url.rsplit("%3D", 1)[1]

    with endpoints(rig) as http, admin.connect() as holder, admin.connect() as killer:
        lock = text(f'SELECT 1 FROM "{schema}".flow_instance WHERE id = :id FOR UPDATE')  # noqa: S608
        holder.execute(lock, {"id": payment.id})
        with ThreadPoolExecutor(1) as pool:
            sent = pool.submit(http.post, NOTIFICATION_PATH, data=notification(payment))
            ended = end_waiting_backends(killer, name, until=sent.done)
            response = sent.result(timeout=30)
        holder.rollback()
        assert ended >= 1
        assert_unavailable(response)

        redelivered = http.post(NOTIFICATION_PATH, data=notification(payment))
        assert redelivered.status_code == 200
        assert rig.engine.get(payment.id).state == "payment_pending"
    admin.dispose()
    store.dispose()


def end_waiting_backends(conn: Connection, name: str, *, until: Callable[[], bool]) -> int:
    """End the store's sessions that wait for a lock, again and again until ``until()``."""
    query = text(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = :name AND wait_event_type = 'Lock'"
    )
    ended, deadline = 0, time.monotonic() + 30
    while not until() and time.monotonic() < deadline:
        ended += len(conn.execute(query, {"name": name}).all())
        conn.commit()
        time.sleep(0.05)
    return ended


def test_serve_answers_503_on_a_locked_sqlite_file_within_its_busy_timeout(
    tmp_path: Path, nicepay: Nicepay
) -> None:
    path = tmp_path / "serve.sqlite3"
    with serving("--db", f"sqlite:///{path}", "--busy-timeout", "0.2", env=ENV) as served:
        store = SqlStore(f"sqlite:///{path}")
        payment = registered(service_rig(store, nicepay))
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        locked = httpx.get(served.url + CALLBACK_PATH, params={"tXid": payment.tx_id}, timeout=30)
        waited = time.monotonic() - started
        other.execute("ROLLBACK")
        other.close()
        store.dispose()
    assert_unavailable(locked)
    assert waited < 10  # eight attempts of 0.2 s and their backoff, not the store's 30 s each


# --- serve checks at start that it can write ------------------------------------------------


def test_serve_will_not_start_on_a_store_it_cannot_write(db_url: str) -> None:
    store = SqlStore(db_url)
    store.create_schema()
    store.dispose()
    run = run_cli("serve", "--db", read_only(db_url), "--port", str(free_port()), env=ENV)
    assert run.returncode == 2, run
    assert run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith("ewallet-fsm: error: database ")  # named, its password hidden
    assert ": cannot write to the database: " in run.stderr
    assert "Traceback" not in run.stderr


# --- a stalled body ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [NOTIFICATION_PATH, CALLBACK_PATH])
def test_a_stalled_body_is_answered_408_and_recorded(rig: ServiceRig, path: str) -> None:
    payment = rig.service.start_payment(payment_order("dana", "ORD-T")).instance
    app = NotificationApp(WorkedHandler(rig.service), body_timeout=0.3)
    partial = b"tXid=" + (payment.tx_id or "").encode()
    with serve_app(app) as url:
        started = time.monotonic()
        answer = send_partial(url, path, partial)
        waited = time.monotonic() - started
        served = httpx.post(url + path, data=notification(payment), timeout=10)

    assert answer.startswith(b"HTTP/1.1 408")
    assert b'"error": "BodyTimeout"' in answer
    assert 0.3 <= waited < 5
    assert served.status_code == 200
    stalled = rig.service.inbound.latest()[1]
    assert (stalled.status_code, stalled.error, stalled.outcome) == (408, "BodyTimeout", "refused")
    assert (stalled.body_bytes, stalled.parameters) == (len(partial), {})
    assert stalled.endpoint == ("notification" if path == NOTIFICATION_PATH else "callback")


# --- X-Forwarded-For is believed only from a trusted proxy ------------------------------------


def source_check(url: str, forwarded_for: str | None) -> int:
    """The status of a notification for an unknown payment: 403 if its source was refused."""
    headers = {"x-forwarded-for": forwarded_for} if forwarded_for else {}
    params = {"tXid": "IONPAYTEST05202502010030000042", "referenceNo": "ORD-NONE"}
    return httpx.post(url + NOTIFICATION_PATH, data=params, headers=headers, timeout=10).status_code


def test_allow_from_ignores_forwarding_headers_unless_the_peer_is_a_trusted_proxy(
    tmp_path: Path,
) -> None:
    db = f"sqlite:///{tmp_path / 'serve.sqlite3'}"
    allow = ("--db", db, "--allow-from", "203.0.113.0/24")
    with serving(*allow, env=ENV) as served:
        assert source_check(served.url, "203.0.113.7") == 403  # anyone can write the header
        assert source_check(served.url, None) == 403

    with serving(*allow, "--trusted-proxy", "127.0.0.0/8", env=ENV) as served:
        assert source_check(served.url, "203.0.113.7") == 404  # let through, then not found
        assert source_check(served.url, "203.0.113.7, 127.0.0.5") == 404  # past another proxy
        assert source_check(served.url, "203.0.113.7, 198.51.100.9") == 403  # the client's lie
        assert source_check(served.url, None) == 403

    store = SqlStore(db)
    addresses = [a.client_ip for a in reversed(InboundJournal(store).latest())]
    store.dispose()
    assert addresses == ["127.0.0.1"] * 2 + ["203.0.113.7"] * 2 + ["198.51.100.9", "127.0.0.1"]

    refused = run_cli("serve", "--db", db, "--trusted-proxy", "not-a-network", env=ENV)
    assert refused.returncode == 2
    assert refused.stderr.startswith("ewallet-fsm: error: --trusted-proxy")
