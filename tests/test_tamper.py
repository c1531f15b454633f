"""Edits to a copy of a database the demo filled: ``ewallet-fsm verify`` names each as tampered.

The demo runs once per database and protection (SQLite and PostgreSQL; with an audit key and
with the plain hash chain). Each edit is applied to a fresh copy, and ``verify`` must exit 1
saying ``tampered`` at the first bad step. The first eight are edits replay alone called
consistent; then rows rewritten, deleted, inserted and reordered; then the edits replay already
caught. A keyed database checked without its key is never called intact.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from fsm.flows import FLOWS
from fsm.store.schema import SCHEMA_TABLES, VERSION_TABLE
from tests.conftest import postgres_url_or_skip
from tests.test_audit import run_cli

KEY = "audit-1:a-long-enough-audit-secret"
ROW = None
"""Where an edit of the instance row is found: not a step."""
FLOW_FINGERPRINT = FLOWS["ewallet_payment"].fingerprint


@dataclass(frozen=True)
class Edit:
    """An edit of one demo payment (found by its scenario name) and where verify must find it."""

    scenario: str
    sql: tuple[str, ...]
    where: int | None


def row_edit(scenario: str, assignment: str) -> Edit:
    """An edit of the instance row alone."""
    return Edit(scenario, (f"update flow_instance set {assignment} where id = :id",), ROW)  # noqa: S608 - literals of this module


EDITS = {
    "settlement rewritten paid to expired, log and row": Edit(
        "ovo-paid",
        (
            "update transition_log set event = 'expire_payment', dest = 'expired' "
            "where instance_id = :id and seq = 7",
            "delete from transition_log where instance_id = :id and seq = 8",
            "update flow_instance set state = 'expired', version = 7, deadline_at = null "
            "where id = :id",
        ),
        7,
    ),
    "settling actor changed to operator": Edit(
        "ovo-paid",
        ("update transition_log set actor = 'operator' where instance_id = :id and seq = 7",),
        7,
    ),
    "last step (a void) deleted, row rolled back": Edit(
        "ovo-cancel-answer-lost",
        (
            "update flow_instance set state = (select source from transition_log "
            "where instance_id = :id and seq = flow_instance.version), "
            "version = version - 1, refunded_amount = null where id = :id",
            "delete from transition_log where instance_id = :id and seq = "
            "(select max(seq) from transition_log where instance_id = :id)",
        ),
        ROW,
    ),
    "row amount replaced": row_edit("dana-paid", "amount = '1500'"),
    "row tXid replaced": row_edit("dana-paid", "tx_id = 'IONPAYTEST-OTHER'"),
    "step payload rewritten": Edit(
        "ovo-paid",
        (
            "update transition_log set payload = replace(payload, '150000', '15000') "
            "where instance_id = :id and seq = 5",
        ),
        5,
    ),
    "step key rewritten": Edit(
        "ovo-paid",
        (
            "update transition_log set idempotency_key = idempotency_key || '-x' "
            "where instance_id = :id and seq = 2",
        ),
        2,
    ),
    "step time rewritten": Edit(
        "ovo-paid",
        (
            "update transition_log set occurred_at = (select min(occurred_at) "
            "from transition_log where instance_id = :id) where instance_id = :id and seq = 3",
        ),
        3,
    ),
    "step rewritten": Edit(
        "linkaja-failed",
        (
            "update transition_log set event = 'fail_registration', dest = 'registration_failed' "
            "where instance_id = :id and seq = 1",
        ),
        1,
    ),
    "step deleted": Edit(
        "ovo-expired", ("delete from transition_log where instance_id = :id and seq = 4",), 4
    ),
    "step inserted": Edit(
        "ovo-expired",
        (
            "update transition_log set seq = seq + 100 where instance_id = :id and seq >= 4",
            "update transition_log set seq = seq - 99 where instance_id = :id and seq >= 100",
            "insert into transition_log (instance_id, seq, event, source, dest, actor, "
            "idempotency_key, payload, occurred_at, fingerprint, chain_link, chain_key) "
            "select instance_id, 4, event, source, dest, actor, 'inserted', payload, "
            "occurred_at, fingerprint, chain_link, chain_key from transition_log "
            "where instance_id = :id and seq = 5",
            "update flow_instance set version = version + 1 where id = :id",
        ),
        4,
    ),
    "steps reordered": Edit(
        "ovo-paid",
        (
            "update transition_log set seq = 0 where instance_id = :id and seq = 3",
            "update transition_log set seq = 3 where instance_id = :id and seq = 4",
            "update transition_log set seq = 4 where instance_id = :id and seq = 0",
        ),
        3,
    ),
    "row state changed alone": row_edit("ovo-expired", "state = 'paid'"),
    "row state unknown": row_edit("ovo-expired", "state = 'nowhere'"),
    "step source rewritten": Edit(
        "ovo-paid",
        ("update transition_log set source = 'paid' where instance_id = :id and seq = 4",),
        4,
    ),
    "step payload not JSON": Edit(
        "ovo-paid",
        ("update transition_log set payload = '{broken' where instance_id = :id and seq = 2",),
        2,
    ),
    "step event unknown": Edit(
        "ovo-paid",
        ("update transition_log set event = 'teleport' where instance_id = :id and seq = 1",),
        1,
    ),
}


@dataclass(frozen=True)
class Filled:
    """A database the demo filled, how to copy it, and its payments by scenario."""

    backend: str
    keyed: bool
    source: str
    """The SQLite file, or the PostgreSQL schema."""
    base_url: str
    payments: dict[str, str]


@contextlib.contextmanager
def audit_key(value: str | None) -> Iterator[None]:
    before = os.environ.pop("EWALLET_FSM_AUDIT_KEY", None)
    if value is not None:
        os.environ["EWALLET_FSM_AUDIT_KEY"] = value
    try:
        yield
    finally:
        os.environ.pop("EWALLET_FSM_AUDIT_KEY", None)
        if before is not None:
            os.environ["EWALLET_FSM_AUDIT_KEY"] = before


def pg_url(base: str, schema: str) -> str:
    return f"{base}?options=-csearch_path%3D{schema}"


@pytest.fixture(
    scope="module",
    params=[
        ("sqlite", True),
        ("sqlite", False),
        pytest.param(("postgres", True), marks=pytest.mark.postgres),
        pytest.param(("postgres", False), marks=pytest.mark.postgres),
    ],
    ids=lambda param: f"{param[0]}-{'keyed' if param[1] else 'hash-only'}",
)
def filled(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Filled]:
    backend, keyed = request.param
    if backend == "sqlite":
        source = str(tmp_path_factory.mktemp("demo") / "demo.sqlite3")
        base, url = "", f"sqlite:///{source}"
    else:
        base = postgres_url_or_skip()
        source = f"t_{uuid.uuid4().hex[:12]}"
        _pg(base, f'create schema "{source}"')
        url = pg_url(base, source)
    with audit_key(KEY if keyed else None):
        code, out, err = run_cli("demo", "--db", url, "--json")
    assert code == 0, err
    payments = {p["id"].split("-", 2)[2]: p["id"] for p in json.loads(out)["payments"]}
    yield Filled(backend, keyed, source, base, payments)
    if backend == "postgres":
        _pg(base, f'drop schema "{source}" cascade')


def _pg(base: str, *statements: str) -> None:
    engine = create_engine(base)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


@pytest.fixture
def copy(filled: Filled, tmp_path: Path) -> Iterator[str]:
    """A copy of the filled database: its URL."""
    if filled.backend == "sqlite":
        target = tmp_path / "copy.sqlite3"
        with sqlite3.connect(filled.source) as source, sqlite3.connect(target) as into:
            source.backup(into)
        yield f"sqlite:///{target}"
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    tables = [f'"{schema}"."{t}"' for t in (*sorted(SCHEMA_TABLES), VERSION_TABLE)]
    sources = [f'"{filled.source}"."{t}"' for t in (*sorted(SCHEMA_TABLES), VERSION_TABLE)]
    _pg(
        filled.base_url,
        f'create schema "{schema}"',
        *(
            f"create table {t} (like {s} including all); insert into {t} select * from {s}"  # noqa: S608 - our own schema names
            for t, s in zip(tables, sources, strict=True)
        ),
    )
    yield pg_url(filled.base_url, schema)
    _pg(filled.base_url, f'drop schema "{schema}" cascade')


def apply(url: str, edit: Edit, instance_id: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        for statement in edit.sql:
            conn.execute(text(statement), {"id": instance_id})
    engine.dispose()


def verify(url: str, *argv: str, key: str | None) -> tuple[int, dict[str, Any]]:
    with audit_key(key):
        code, out, err = run_cli("verify", *argv, "--db", url, "--json")
    assert "Traceback" not in err
    return code, json.loads(out)


def test_the_demo_database_verifies_intact(filled: Filled, copy: str) -> None:
    code, report = verify(copy, "--all", key=KEY if filled.keyed else None)
    assert code == 0, report
    assert report["checked"] == len(filled.payments)
    statuses = {item["chain"]["status"] for item in report["instances"]}
    assert statuses == {"intact"}
    key_ids = {tuple(item["chain"]["key_ids"]) for item in report["instances"]}
    assert key_ids == ({("audit-1",)} if filled.keyed else {("sha256",)})


@pytest.mark.parametrize("name", list(EDITS))
def test_each_edit_is_reported_tampered_at_its_first_bad_step(
    filled: Filled, copy: str, name: str
) -> None:
    edit = EDITS[name]
    instance_id = filled.payments[edit.scenario]
    apply(copy, edit, instance_id)
    key = KEY if filled.keyed else None
    code, report = verify(copy, instance_id, key=key)
    assert code == 1
    chain = report["instances"][0]["chain"]
    assert chain["status"] == "tampered", chain
    assert chain["seq"] == edit.where, chain
    assert chain["where"] == ("the instance row" if edit.where is None else f"step {edit.where}")
    code, everything = verify(copy, "--all", key=key)
    assert code == 1
    assert [i["instance"] for i in everything["instances"] if i["chain"]["status"] != "intact"] == [
        instance_id
    ]
    if filled.keyed:  # without its key a keyed chain is checked for order only: never intact
        code, unkeyed = verify(copy, instance_id, key=None)
        assert unkeyed["instances"][0]["chain"]["status"] in {"tampered", "unverified"}
        code, _ = verify(copy, instance_id, "--require-key", key=None)
        assert code == 1


def test_a_hash_only_database_fails_when_a_key_is_required(filled: Filled, copy: str) -> None:
    code, report = verify(copy, "--all", "--require-key", key=KEY)
    if filled.keyed:
        assert code == 0
    else:
        assert code == 1
        assert {i["chain"]["status"] for i in report["instances"]} == {"unverified"}


def test_a_key_holder_fails_on_hash_only_chains_unless_it_accepts_them(
    filled: Filled, copy: str
) -> None:
    # Rows rewritten and hashed again without the key read as hash-only chains: whoever holds
    # the key is not told they pass, unless it says that rows stored before its key may be so.
    code, report = verify(copy, "--all", key=KEY)
    if filled.keyed:
        assert code == 0
        return
    assert code == 1
    assert {i["chain"]["status"] for i in report["instances"]} == {"unverified"}
    code, _ = verify(copy, "--all", "--accept-unkeyed", key=KEY)
    assert code == 0
    code, _ = verify(copy, "--all", key=None)  # no key held: the hash chain is all there is
    assert code == 0


def test_the_audit_report_of_an_edited_database_says_so_at_its_top(
    filled: Filled, copy: str, tmp_path: Path
) -> None:
    instance_id = filled.payments["ovo-paid"]
    key = KEY if filled.keyed else None
    with audit_key(key):
        code, _, _ = run_cli(
            "audit", instance_id, "-o", str(tmp_path / "intact.html"), "--db", copy
        )
    assert code == 0
    intact = (tmp_path / "intact.html").read_text(encoding="utf-8")
    assert '<section id="tampered"' not in intact
    assert 'data-chain="intact"' in intact
    assert ("audit-1" if filled.keyed else "sha256") in intact
    assert f"<td>{FLOW_FINGERPRINT}</td>" in intact.replace("<wbr>", "")  # the definition per step

    apply(copy, EDITS["settling actor changed to operator"], instance_id)
    with audit_key(key):
        code, out, _ = run_cli(
            "audit", instance_id, "-o", str(tmp_path / "edited.html"), "--db", copy
        )
    assert code == 1
    assert "audit chain tampered at step 7" in out
    edited = (tmp_path / "edited.html").read_text(encoding="utf-8")
    top = edited.index("<h1>")
    assert top < edited.index('<section id="tampered"') < edited.index('<section id="summary"')
    assert "The audit chain breaks at step 7" in edited
    assert 'data-chain="tampered"' in edited


def test_values_no_writer_stores_are_reported_not_crashed_on(filled: Filled, copy: str) -> None:
    if filled.backend != "sqlite":
        pytest.skip("PostgreSQL's column types refuse these values")
    instance_id = filled.payments["ovo-paid"]
    unreadable = Edit(
        "ovo-paid",
        (
            "update transition_log set occurred_at = 'garbage' where instance_id = :id and seq = 3",
            "update flow_instance set version = 'v' where id = :id",
        ),
        3,
    )
    apply(copy, unreadable, instance_id)
    code, report = verify(copy, instance_id, key=KEY if filled.keyed else None)
    assert code == 1
    (item,) = report["instances"]
    assert (item["chain"]["status"], item["chain"]["seq"]) == ("tampered", 3)
    assert item["problem"].startswith("its rows do not read back")
