"""Migration 0010 chains a stored log bigger than the batch it reads at a time, as a whole."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, text

from fsm import ChainStatus, SqlStore, verify_chains
from tests.fsm.test_migrations import at_revision_with_rows

BATCH = importlib.import_module("fsm.store.migrations.versions.v0010_audit_chain").BATCH
"""The rows the migration reads at a time: the log below is bigger."""
assert BATCH > 2
STEPS = {"bulk-a": BATCH // 2, "bulk-b": BATCH - 1, "bulk-c": 2, "bulk-d": BATCH + 3, "bulk-e": 0}
"""Steps per added instance: batches end inside an instance and right after one."""


@pytest.fixture
def bare(db_url: str) -> Iterator[SqlStore]:
    store = SqlStore(db_url)
    yield store
    store.dispose()


def copy_rows(conn: Connection, table: str, key: str, value: str) -> list[dict[str, Any]]:
    rows = conn.execute(text(f"select * from {table} where {key} = :v order by 1"), {"v": value})  # noqa: S608 - our own names
    return [dict(row._mapping) for row in rows]


def insert(conn: Connection, table: str, rows: list[dict[str, Any]]) -> None:
    if rows:
        names = list(rows[0])
        values = ", ".join(f":{name}" for name in names)
        conn.execute(text(f"insert into {table} ({', '.join(names)}) values ({values})"), rows)  # noqa: S608 - our own names


def test_a_log_bigger_than_a_batch_is_chained_whole(bare: SqlStore) -> None:
    pid, before = at_revision_with_rows(bare, "0009")
    with bare.engine.begin() as conn:
        (instance,) = copy_rows(conn, "flow_instance", "id", pid)
        step = copy_rows(conn, "transition_log", "instance_id", pid)[0]
        for instance_id, steps in STEPS.items():
            insert(
                conn,
                "flow_instance",
                [{**instance, "id": instance_id, "reference_no": instance_id, "version": steps}],
            )
            insert(
                conn,
                "transition_log",
                [
                    {**step, "instance_id": instance_id, "seq": seq, "idempotency_key": f"k{seq}"}
                    for seq in range(1, steps + 1)
                ],
            )
    bare.create_schema()  # 0010 and on
    verdicts = verify_chains(bare, [pid, *STEPS])
    assert {v.status for v in verdicts.values()} == {ChainStatus.INTACT}
    assert {v.key_ids for v in verdicts.values()} == {("sha256",)}
    assert {i: v.steps for i, v in verdicts.items()} == {pid: len(before), **STEPS}
    with bare.engine.begin() as conn:  # every link depends on the one before: one edit breaks
        conn.execute(
            text(
                "update transition_log set idempotency_key = 'x'"
                " where instance_id = 'bulk-d' and seq = :seq"
            ),
            {"seq": BATCH + 1},
        )
    edited = verify_chains(bare, ["bulk-d"])["bulk-d"]
    assert (edited.status, edited.seq) == (ChainStatus.TAMPERED, BATCH + 1)
