"""Stored payments built fast (``executemany`` on the library's own schema) and the dict tables
the hand-written floors use in place of the engine.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from fsm.chain import Chain
from fsm.definition import Actor
from fsm.flows import FLOWS, PaymentEvent
from fsm.store.sql import SqlStore
from perf.chain import KEYS

FLOW = FLOWS["ewallet_payment"]
WALLET = "dana"
CHUNK = 50_000

INSTANCE_COLUMNS = (
    "id, flow, state, version, wallet, amount, currency, reference_no, tx_id, mandate, "
    "deadline_at, created_at, updated_at, chain_link, chain_seal, chain_key, flow_version"
)
LOG_COLUMNS = (
    "instance_id, seq, event, source, dest, actor, idempotency_key, payload, occurred_at, "
    "fingerprint, flow_version, chain_link, chain_key"
)
CHAIN = Chain(KEYS)
"""Seeded rows are chained by the library, under the key every variant signs with."""

CYCLE = (
    (PaymentEvent.CHECK_STATUS, Actor.MERCHANT),
    (PaymentEvent.REPORT_PENDING, Actor.STATUS_INQUIRY),
)
"""A payment in ``payment_pending`` polls forever: asked, still pending, asked again."""

PATH = (
    (PaymentEvent.SEND_REGISTRATION, Actor.MERCHANT),
    (PaymentEvent.ACCEPT_REGISTRATION, Actor.PROVIDER_RESPONSE),
    (PaymentEvent.REQUEST_PAYMENT, Actor.MERCHANT),
    (PaymentEvent.REDIRECT_CUSTOMER, Actor.MERCHANT),
    (PaymentEvent.RECEIVE_NOTIFICATION, Actor.PROVIDER_NOTIFICATION),
    (PaymentEvent.CHECK_STATUS, Actor.MERCHANT),
    (PaymentEvent.REPORT_PENDING, Actor.STATUS_INQUIRY),
    (PaymentEvent.CHECK_STATUS, Actor.MERCHANT),
    (PaymentEvent.CONFIRM_PAYMENT, Actor.STATUS_INQUIRY),
    (PaymentEvent.CONFIRM_ORDER, Actor.MERCHANT),
)
"""A DANA payment from checkout to a confirmed order, with one pending poll: ten steps."""

PENDING_PAYLOAD = {"tXid": "BENCH0000000001", "status": "9", "resultMsg": "initiated"}


@dataclass(frozen=True)
class DictFlow:
    """The flow as a hand-written FSM would hold it: plain dicts, nothing else."""

    moves: dict[tuple[str, str], tuple[str, frozenset[str]]]
    """``(state, event)`` to ``(dest, actors)`` (the first transition declared)."""
    declared: dict[tuple[str, str, str], frozenset[str]]
    """``(source, event, dest)`` to the actors allowed, for verifying a replayed step."""
    deadlines: dict[str, timedelta]
    initial: str
    fingerprint: str


def dict_flow() -> DictFlow:
    """The ``ewallet_payment`` flow flattened into dicts, for DANA payments."""
    moves: dict[tuple[str, str], tuple[str, frozenset[str]]] = {}
    declared: dict[tuple[str, str, str], frozenset[str]] = {}
    for spec in FLOW.transitions:
        actors = frozenset(str(actor) for actor in spec.actors)
        for source in spec.sources:
            moves.setdefault((source, spec.event), (spec.dest, actors))
            key = (source, spec.event, spec.dest)
            declared[key] = declared.get(key, frozenset()) | actors
    deadlines = {
        state.name: state.deadline.for_wallet(WALLET)
        for state in FLOW.states
        if state.deadline is not None
    }
    return DictFlow(moves, declared, deadlines, FLOW.initial, FLOW.fingerprint)


def sqlite_time(moment: datetime) -> str:
    """A UTC time as SQLAlchemy stores it in SQLite (``YYYY-MM-DD HH:MM:SS.ffffff``)."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def payment_id(number: int) -> str:
    """The id of the ``number``-th seeded payment."""
    return f"pay-{number:08d}"


def instance_rows(
    count: int, *, state: str, version: int, links: Mapping[str, str] | None = None
) -> Iterator[tuple[Any, ...]]:
    """Rows of ``flow_instance`` (times as aware datetimes), sealed at their latest link."""
    now = datetime.now(UTC)
    spec = FLOW.state(state).deadline
    deadline = None if spec is None else now + spec.for_wallet(WALLET)
    for number in range(count):
        pid = payment_id(number)
        sealed: tuple[Any, ...] = (pid, FLOW.name, state, version, WALLET, "150000", "IDR")
        sealed += (f"ORD-{number:08d}", f"TX{number:018d}", None, None, FLOW.version)
        latest = "" if links is None else links[pid]
        seal = CHAIN.seal(latest, sealed)
        yield (*sealed[:10], deadline, now, now, latest, seal, CHAIN.key_id, FLOW.version)


def log_rows(
    count: int, path: Sequence[tuple[str, Actor]], links: dict[str, str]
) -> Iterator[tuple[Any, ...]]:
    """Rows of ``transition_log``: every payment walked along ``path`` from the initial state,
    chained; each payment's last link is left in ``links``."""
    now = datetime.now(UTC)
    for number in range(count):
        state, latest, pid = FLOW.initial, "", payment_id(number)
        for seq, (event, actor) in enumerate(path, start=1):
            dest = FLOW.candidates(state, event)[0].dest
            payload = '{"status":"9"}' if event == PaymentEvent.REPORT_PENDING else "{}"
            row = (
                *(pid, seq, event, state, dest, str(actor), f"seed:{seq}", payload, now),
                FLOW.fingerprint,
                FLOW.version,
            )
            latest = CHAIN.link(latest, row)
            yield (*row, latest, CHAIN.key_id)
            state = dest
        links[pid] = latest


def seeded_postgres(base_url: str, schema: str, count: int, *, state: str) -> str:
    """Create ``schema`` with the library's tables and store ``count`` payments in it.

    Returns the SQLAlchemy URL whose ``search_path`` is that schema.
    """
    with psycopg.connect(plain_pg_url(base_url), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = f"{base_url}?options=-csearch_path%3D{schema}"
    store = SqlStore(url)
    store.create_schema()
    store.dispose()
    with psycopg.connect(plain_pg_url(url)) as conn, conn.cursor() as cursor:
        with cursor.copy(f"COPY flow_instance ({INSTANCE_COLUMNS}) FROM STDIN") as copy:
            for row in instance_rows(count, state=state, version=0):
                copy.write_row(row)
        conn.commit()
    return url


def drop_postgres_schema(base_url: str, schema: str) -> None:
    """Drop a schema made by :func:`seeded_postgres`."""
    with psycopg.connect(plain_pg_url(base_url), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def plain_pg_url(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as psycopg takes it (no ``+psycopg`` driver suffix)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def seeded_sqlite(
    path: str, count: int, *, state: str, path_steps: Sequence[tuple[str, Actor]] = ()
) -> str:
    """Create the schema at ``path`` and store ``count`` payments; returns the store's URL.

    With ``path_steps`` each payment also gets that many log rows and the matching version.
    """
    url = f"sqlite:///{path}"
    store = SqlStore(url)
    store.create_schema()
    store.dispose()
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")  # building only; the benchmark reopens the file
        links: dict[str, str] = {}
        if path_steps:  # logged first for their links; the instances go in first
            logged = list(log_rows(count, path_steps, links))
        rows = instance_rows(count, state=state, version=len(path_steps), links=links or None)
        _insert_sqlite(conn, "flow_instance", INSTANCE_COLUMNS, 17, rows)
        if path_steps:
            _insert_sqlite(conn, "transition_log", LOG_COLUMNS, 13, iter(logged))
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return url


def _insert_sqlite(
    conn: sqlite3.Connection,
    table: str,
    columns: str,
    width: int,
    rows: Iterator[tuple[Any, ...]],
) -> None:
    sql = f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * width)})"  # noqa: S608
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(tuple(sqlite_time(v) if isinstance(v, datetime) else v for v in row))
        if len(chunk) == CHUNK:
            conn.executemany(sql, chunk)
            conn.commit()
            chunk.clear()
    conn.executemany(sql, chunk)
    conn.commit()
