"""Durable fire: ``Engine.fire`` against raw ``sqlite3`` and raw psycopg doing the same work. Every
variant owns a database of its own, seeded alike, and fires the same sequence: payments in
``payment_pending`` polled round-robin (``check_status`` then ``report_pending``, which carries a
small payload), each event applied for real. The floor reads the row, decides with a dict, compare-
and-sets the row, inserts the log row and commits: the same statements the engine sends, less its
idempotency lookup (the floor leans on the log's unique key), writing the same row content, the
audit chain's link and seal included (``perf.chain``: a user who wants a tamper-evident log
computes them too). Every variant signs with the same audit key. Like SQLAlchemy's pysqlite
default, raw ``sqlite3`` opens the write transaction at the ``UPDATE``. ``Engine.fire_many`` runs
the same workload fifty events per transaction against ``Engine.fire`` in a comparison of its own,
for the throughput a batch gains at FULL. Beside them runs the peer a user would otherwise write
(``perf.peer``: ``transitions`` models persisted through the sqlmodel ORM), so the report shows the
gap between the engine and that.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any, Protocol

import psycopg

from fsm.engine import Engine
from fsm.flows import FLOWS, PaymentState
from fsm.model import FireRequest, TransitionResult
from fsm.store.sql import SqlStore
from perf.chain import KEY_ID, KEYS, link, seal, utc_text
from perf.fixtures import (
    CYCLE,
    FLOW,
    PENDING_PAYLOAD,
    DictFlow,
    dict_flow,
    drop_postgres_schema,
    payment_id,
    plain_pg_url,
    seeded_postgres,
    seeded_sqlite,
    sqlite_time,
)
from perf.harness import Comparison, Target, Variant
from perf.peer import postgres_peer, sqlite_peer
from perf.settings import Settings

Op = tuple[str, str, str, str, Mapping[str, Any]]
"""One event to fire: payment id, event, actor, idempotency key, payload."""

SELECT_ROW = (
    "SELECT id, flow, state, version, wallet, amount, currency, reference_no, tx_id, mandate, "
    "deadline_at, created_at, updated_at, refunded_amount, chain_link, flow_version "
    "FROM flow_instance WHERE id = {p}"
)
CAS_UPDATE = (
    "UPDATE flow_instance SET state = {p}, version = {p}, deadline_at = {p}, updated_at = {p}, "
    "chain_link = {p}, chain_seal = {p}, chain_key = {p} WHERE id = {p} AND version = {p}"
)
INSERT_LOG = (
    "INSERT INTO transition_log (instance_id, seq, event, source, dest, actor, "
    "idempotency_key, payload, occurred_at, fingerprint, chain_link, chain_key) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})"
)


def chained(
    row: Any, event: str, dest: str, actor: str, key: str, body: str, now: datetime
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The log row and the compare-and-set's chain values of one step from ``row`` (the
    instance as read): the new link after the row's, and the seal of the moved row."""
    instance_id, seq = row[0], row[3] + 1
    values = (
        instance_id,
        seq,
        event,
        row[2],
        dest,
        actor,
        key,
        body,
        utc_text(now),
        FLOW.fingerprint,
        row[15],
    )
    new_link = link(row[14] or "", values)
    sealed = (instance_id, row[1], dest, seq, *row[4:10], row[13], row[15])
    return (*values[:8], now, FLOW.fingerprint, new_link, KEY_ID), (
        new_link,
        seal(new_link, sealed),
        KEY_ID,
    )


class Workload:
    """The round-robin poll over ``payments`` seeded payments, as precomputed batches."""

    def __init__(self, payments: int) -> None:
        """Fire at payments ``0 .. payments-1``, all seeded in ``payment_pending``."""
        self._payments = payments
        self._next = 0

    def batch(self, size: int) -> list[Op]:
        """The next ``size`` events (built before the clock starts)."""
        ops: list[Op] = []
        for number in range(self._next, self._next + size):
            lap, index = divmod(number, self._payments)
            event, actor = CYCLE[lap % 2]
            payload = PENDING_PAYLOAD if lap % 2 else {}
            ops.append((payment_id(index), str(event), str(actor), f"poll:{lap}", payload))
        self._next += size
        return ops


class Fire(Protocol):
    """Something that applies one event durably."""

    def __call__(
        self, instance_id: str, event: str, actor: str, key: str, payload: Mapping[str, Any]
    ) -> object: ...


def timed(workload: Workload, fire: Fire) -> Callable[[int], float]:
    """A harness batch: ``size`` events of ``workload`` through ``fire``."""

    def run(size: int) -> float:
        ops = workload.batch(size)
        start = time.perf_counter()
        for instance_id, event, actor, key, payload in ops:
            fire(instance_id, event, actor, key, payload)
        return time.perf_counter() - start

    return run


def engine_fire(store: SqlStore) -> Fire:
    """``Engine.fire`` on ``store``."""
    engine = Engine(store, flows=FLOWS)

    def fire(
        instance_id: str, event: str, actor: str, key: str, payload: Mapping[str, Any]
    ) -> object:
        return engine.fire(instance_id, event, actor=actor, idempotency_key=key, payload=payload)

    return fire


BATCH = 50
"""Events per ``fire_many`` transaction."""


def engine_fire_many(workload: Workload, store: SqlStore) -> Callable[[int], float]:
    """A harness batch through ``Engine.fire_many``, ``BATCH`` events per transaction."""
    engine = Engine(store, flows=FLOWS)

    def run(size: int) -> float:
        requests = [FireRequest(*op) for op in workload.batch(size)]
        start = time.perf_counter()
        for first in range(0, size, BATCH):
            outcomes = engine.fire_many(requests[first : first + BATCH])
            if not all(isinstance(outcome, TransitionResult) for outcome in outcomes):
                raise AssertionError(outcomes)
        return time.perf_counter() - start

    return run


def throughput_extra(single: str, batched: str) -> dict[str, Any]:
    """Asks the report for the events per second of ``batched`` against ``single``."""
    return {"throughput": {"single": single, "batched": batched, "events_per_batch": BATCH}}


class RawSqlite:
    """The hand-written floor on ``sqlite3``: a dict FSM and three statements in a transaction."""

    def __init__(self, path: str, synchronous: str) -> None:
        """Open ``path`` with the store's pragmas (WAL, ``synchronous``, foreign keys)."""
        self.conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA synchronous={synchronous}")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.flow: DictFlow = dict_flow()
        self._select = SELECT_ROW.format(p="?")
        self._update = CAS_UPDATE.format(p="?")
        self._insert = INSERT_LOG.format(p="?")

    def __call__(
        self, instance_id: str, event: str, actor: str, key: str, payload: Mapping[str, Any]
    ) -> tuple[str, int]:
        """Apply one event; raises ``LookupError``/``PermissionError``/``RuntimeError``."""
        conn = self.conn
        row = conn.execute(self._select, (instance_id,)).fetchone()
        if row is None:
            raise LookupError(instance_id)
        state, version = row[2], row[3]
        dest, actors = self.flow.moves[state, event]
        if actor not in actors:
            raise PermissionError(actor)
        now = datetime.now(UTC)
        stamp = sqlite_time(now)
        deadline = self.flow.deadlines.get(dest)
        due = None if deadline is None else sqlite_time(now + deadline)
        seq = version + 1
        body = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        logged, sealed = chained(row, event, dest, actor, key, body, now)
        cas = (dest, seq, due, stamp, *sealed, instance_id, version)
        if conn.execute(self._update, cas).rowcount != 1:
            conn.rollback()
            raise RuntimeError("lost the race")
        conn.execute(self._insert, (*logged[:8], stamp, *logged[9:]))
        conn.commit()
        return dest, seq

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


class RawPsycopg:
    """The same floor on psycopg 3, with the row locked as the engine locks it."""

    def __init__(self, url: str) -> None:
        """Connect to ``url`` (a SQLAlchemy or libpq URL)."""
        self.conn = psycopg.connect(plain_pg_url(url))
        self.flow: DictFlow = dict_flow()
        self._select = SELECT_ROW.format(p="%s") + " FOR UPDATE"
        self._update = CAS_UPDATE.format(p="%s")
        self._insert = INSERT_LOG.format(p="%s")

    def __call__(
        self, instance_id: str, event: str, actor: str, key: str, payload: Mapping[str, Any]
    ) -> tuple[str, int]:
        """Apply one event in one transaction."""
        conn = self.conn
        with conn.cursor() as cursor:
            row = cursor.execute(self._select, (instance_id,)).fetchone()
            if row is None:
                conn.rollback()
                raise LookupError(instance_id)
            state, version = row[2], row[3]
            dest, actors = self.flow.moves[state, event]
            if actor not in actors:
                conn.rollback()
                raise PermissionError(actor)
            now = datetime.now(UTC)
            deadline = self.flow.deadlines.get(dest)
            due = None if deadline is None else now + deadline
            seq = version + 1
            body = json.dumps(payload, sort_keys=True, separators=(",", ":"))
            logged, sealed = chained(row, event, dest, actor, key, body, now)
            cursor.execute(self._update, (dest, seq, due, now, *sealed, instance_id, version))
            if cursor.rowcount != 1:
                conn.rollback()
                raise RuntimeError("lost the race")
            cursor.execute(self._insert, logged)
        conn.commit()
        return dest, seq

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def sqlite_comparison(config: Settings, stack: ExitStack, synchronous: str) -> Comparison:
    """``Engine.fire`` against raw ``sqlite3`` at one ``synchronous`` level."""
    engine_path = str(config.workdir / f"fire-engine-{synchronous.lower()}.sqlite3")
    raw_path = str(config.workdir / f"fire-raw-{synchronous.lower()}.sqlite3")
    url = seeded_sqlite(engine_path, config.payments, state=PaymentState.PAYMENT_PENDING)
    seeded_sqlite(raw_path, config.payments, state=PaymentState.PAYMENT_PENDING)
    store = SqlStore(url, sqlite_synchronous=synchronous, audit_keys=KEYS)
    stack.callback(store.dispose)
    raw = RawSqlite(raw_path, synchronous)
    stack.callback(raw.close)
    peer_path = str(config.workdir / f"fire-peer-{synchronous.lower()}.sqlite3")
    peer = sqlite_peer(peer_path, synchronous, config.payments)
    stack.callback(peer.close)
    full = synchronous == "FULL"
    return Comparison(
        name=f"fire-sqlite-{synchronous.lower()}",
        title=f"durable fire, SQLite synchronous={synchronous} (per event)",
        floor="raw sqlite3",
        variants=(
            Variant("raw sqlite3", timed(Workload(config.payments), raw), "3 statements + commit"),
            Variant("Engine.fire", timed(Workload(config.payments), engine_fire(store))),
            Variant(peer.NAME, timed(Workload(config.payments), peer), peer.NOTE),
        ),
        ops=config.fire_full_ops if full else config.fire_ops,
        rounds=config.rounds,
        targets=(
            Target(
                "Engine.fire",
                "raw sqlite3",
                1.2 if full else 1.5,
                f"at most {'1.2' if full else '1.5'} times raw sqlite3",
            ),
        ),
        extra={"reference": (peer.NAME, "Engine.fire")},
    )


def postgres_comparison(config: Settings, stack: ExitStack) -> Comparison:
    """``Engine.fire`` against raw psycopg, each in a fresh schema of the test database."""
    schemas = []
    urls = []
    for who in ("engine", "ping", "raw", "peer"):
        schema = f"bench_{who}_{secrets.token_hex(4)}"
        if who != "peer":
            urls.append(
                seeded_postgres(config.pg_url, schema, config.payments, state="payment_pending")
            )
        schemas.append(schema)
        stack.callback(drop_postgres_schema, config.pg_url, schema)
    store = SqlStore(urls[0], audit_keys=KEYS)
    stack.callback(store.dispose)
    pinged = SqlStore(urls[1], pre_ping=True, audit_keys=KEYS)
    stack.callback(pinged.dispose)
    raw = RawPsycopg(urls[2])
    stack.callback(raw.close)
    peer = postgres_peer(config.pg_url, schemas[3], config.payments)
    stack.callback(peer.close)
    return Comparison(
        name="fire-postgres",
        title="durable fire, PostgreSQL (per event)",
        floor="raw psycopg",
        variants=(
            Variant(
                "raw psycopg",
                timed(Workload(config.payments), raw),
                "SELECT FOR UPDATE, UPDATE, INSERT, COMMIT",
            ),
            Variant(
                "Engine.fire",
                timed(Workload(config.payments), engine_fire(store)),
                "SqlStore default: socket check at checkout",
            ),
            Variant(
                "Engine.fire, pre-ping",
                timed(Workload(config.payments), engine_fire(pinged)),
                "SqlStore(url, pre_ping=True): SELECT 1 per checkout",
            ),
            Variant(peer.NAME, timed(Workload(config.payments), peer), peer.NOTE),
        ),
        ops=config.fire_ops,
        rounds=config.rounds,
        targets=(Target("Engine.fire", "raw psycopg", 1.3, "at most 1.3 times raw psycopg"),),
        extra={
            "schemas": schemas,
            "pre_ping": {"Engine.fire": False, "Engine.fire, pre-ping": True},
            "reference": (peer.NAME, "Engine.fire"),
        },
    )


def batch_comparison(config: Settings, stack: ExitStack) -> Comparison:
    """``Engine.fire_many`` against ``Engine.fire`` at synchronous=FULL: the throughput gained."""
    stores = []
    for who in ("single", "batched"):
        path = str(config.workdir / f"fire-{who}-full.sqlite3")
        url = seeded_sqlite(path, config.payments, state=PaymentState.PAYMENT_PENDING)
        stores.append(SqlStore(url, sqlite_synchronous="FULL", audit_keys=KEYS))
        stack.callback(stores[-1].dispose)
    many = f"Engine.fire_many, {BATCH} per batch"
    return Comparison(
        name="fire-many-sqlite-full",
        title="a batch in one transaction, SQLite synchronous=FULL (per event)",
        floor="Engine.fire",
        variants=(
            Variant("Engine.fire", timed(Workload(config.payments), engine_fire(stores[0]))),
            Variant(many, engine_fire_many(Workload(config.payments), stores[1]), "one commit"),
        ),
        ops=config.fire_full_ops,
        rounds=config.rounds,
        extra=throughput_extra("Engine.fire", many),
    )
