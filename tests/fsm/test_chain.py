"""The audit chain: links and seals written by every store, and the verdicts on edited rows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import text

from fsm import (
    AuditKeys,
    ChainStatus,
    ConfigurationError,
    Engine,
    ManualClock,
    MemoryStore,
    SqlStore,
    verify_chains,
)
from fsm.chain import HASH_ONLY, LINK_FIELDS, Chain, canonical
from fsm.flows import FLOWS
from fsm.model import TransitionRecord
from tests.conftest import AnyStore
from tests.fsm.conftest import T0
from tests.fsm.test_persistence import PATH

SECRET = "s3cret-audit-key-0001"
OTHER_SECRET = "an0ther-audit-key-0002"
KEYS = AuditKeys(("k1", SECRET))


def paid_path(store: AnyStore, pid: str | None = None) -> str:
    """A payment taken along :data:`PATH` on ``store`` (its reference its id); its id."""
    engine = Engine(store, flows=FLOWS, clock=ManualClock(T0))
    pid = engine.start("ewallet_payment", instance_id=pid, wallet="ovo", amount=1000).id
    for index, (event, actor, payload) in enumerate(PATH):
        if payload and "reference_no" in payload:
            payload = {**payload, "reference_no": pid}
        engine.fire(pid, event, actor=actor, idempotency_key=f"k{index}", payload=payload)
    return pid


def keyed(url: str, keys: AuditKeys | None) -> Iterator[SqlStore]:
    store = SqlStore(url, audit_keys=keys)
    store.create_schema()
    yield store
    store.dispose()


@pytest.fixture
def signed(db_url: str) -> Iterator[SqlStore]:
    """A store on each database that signs with :data:`KEYS`."""
    yield from keyed(db_url, KEYS)


def edit(store: SqlStore, sql: str, **params: Any) -> None:
    with store.engine.begin() as conn:
        conn.execute(text(sql), params)


def verdict_of(store: SqlStore | MemoryStore, pid: str, **options: Any) -> Any:
    return verify_chains(store, [pid], **options)[pid]


# --- keys -------------------------------------------------------------------------------------


def test_keys_parse_with_the_first_signing_and_never_show_a_secret() -> None:
    keys = AuditKeys.parse(f"new:{OTHER_SECRET}, old:{SECRET}")
    assert keys.signing_id == "new"
    assert keys.ids == ("new", "old")
    assert SECRET not in repr(keys)
    assert SECRET not in repr(Chain(keys))
    assert AuditKeys.from_env({"EWALLET_FSM_AUDIT_KEY": f"k1:{SECRET}"}) is not None
    assert AuditKeys.from_env({}) is None


@pytest.mark.parametrize(
    "text_",
    [f"sha256:{SECRET}", "k1:short", f"k1:{SECRET},k1:{OTHER_SECRET}", f"bad id:{SECRET}", "k1"],
)
def test_malformed_keys_are_refused_without_repeating_the_secret(text_: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        AuditKeys.parse(text_)
    assert SECRET not in str(refused.value)
    assert OTHER_SECRET not in str(refused.value)


def test_the_encoding_is_unambiguous() -> None:
    assert canonical(["a,b", "c"]) != canonical(["a", "b,c"])
    assert canonical([None]) != canonical(["null"])
    assert canonical([1]) != canonical(["1"])


# --- every store writes the same chain -------------------------------------------------------


def test_a_path_is_intact_on_every_store(any_store: AnyStore) -> None:
    pid = paid_path(any_store)
    verdict = verdict_of(any_store, pid)
    assert verdict.status is ChainStatus.INTACT
    assert verdict.key_ids == (HASH_ONLY,)
    assert verdict.steps == len(PATH)
    assert "SHA-256 hash chain" in verdict.describe()


def test_memory_and_sql_stores_write_the_same_links(db_url: str) -> None:
    sql_store = next(keyed(db_url, KEYS))
    memory = MemoryStore(audit_keys=KEYS)
    rows = [next(iter(store.chained([paid_path(store, "pay-1")]))) for store in (sql_store, memory)]
    assert rows[0] == rows[1]
    assert len(rows[0].step_rows) == len(PATH)
    sql_store.dispose()


# --- edits -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "seq"),
    [
        ("update transition_log set actor = 'operator' where instance_id = :pid and seq = 2", 2),
        ("update transition_log set payload = '{}' where instance_id = :pid and seq = 2", 2),
        ("update transition_log set payload = 'not json' where instance_id = :pid and seq = 3", 3),
        ("update transition_log set idempotency_key = 'x' where instance_id = :pid and seq = 1", 1),
        ("delete from transition_log where instance_id = :pid and seq = 3", 3),
        ("update flow_instance set amount = '999999' where id = :pid", None),
        ("update flow_instance set tx_id = 'TXFAKE' where id = :pid", None),
        ("update flow_instance set state = 'order_confirmed' where id = :pid", None),
        ("update flow_instance set chain_seal = null where id = :pid", None),
        ("update transition_log set chain_link = null where instance_id = :pid and seq = 5", 5),
    ],
)
def test_each_edit_is_tampered_at_its_first_bad_step(signed: SqlStore, sql: str, seq: int) -> None:
    pid = paid_path(signed)
    edit(signed, sql, pid=pid)
    verdict = verdict_of(signed, pid)
    assert verdict.status is ChainStatus.TAMPERED
    assert verdict.seq == seq
    assert verdict.key_ids[:1] == ("k1",)


def test_a_deleted_last_step_with_the_row_rolled_back_is_tampered(signed: SqlStore) -> None:
    pid = paid_path(signed)
    edit(signed, "delete from transition_log where instance_id = :pid and seq = 5", pid=pid)
    edit(
        signed,
        "update flow_instance set state = 'payment_pending', version = 4 where id = :pid",
        pid=pid,
    )
    verdict = verdict_of(signed, pid)
    assert (verdict.status, verdict.seq) == (ChainStatus.TAMPERED, None)
    assert "deleted or added" in (verdict.reason or "")


def test_a_recomputed_hash_chain_passes_but_not_a_keyed_one(db_url: str) -> None:
    """Someone who rewrites a row and recomputes the links: only a key tells."""
    store = next(keyed(db_url, None))
    pid = paid_path(store)
    edit(
        store,
        "update transition_log set actor = 'operator' where instance_id = :pid and seq = 5",
        pid=pid,
    )
    assert verdict_of(store, pid).status is ChainStatus.TAMPERED
    rechain(store, pid, Chain())
    assert verdict_of(store, pid).status is ChainStatus.INTACT
    assert verdict_of(store, pid, require_key=True).status is ChainStatus.UNVERIFIED
    signing = next(keyed(db_url, KEYS))
    other = paid_path(signing)
    rechain(signing, other, Chain(AuditKeys(("k1", OTHER_SECRET))))
    assert verdict_of(signing, other).status is ChainStatus.TAMPERED
    rechain(signing, other, Chain())  # downgraded to a hash chain: never intact under a key
    downgraded = verdict_of(signing, other)
    assert (downgraded.status, downgraded.key_ids) == (ChainStatus.UNVERIFIED, (HASH_ONLY,))
    assert "only hash-chained" in (downgraded.reason or "")
    store.dispose()
    signing.dispose()


def rechain(store: SqlStore, pid: str, forger: Chain) -> None:
    """Recompute every link and the seal of ``pid`` with ``forger``, as an editor could."""
    rows = next(iter(store.chained([pid])))
    link = ""
    for step in rows.step_rows:
        link = forger.link(link, step[: len(LINK_FIELDS)])
        edit(
            store,
            "update transition_log set chain_link = :link, chain_key = :key "
            "where instance_id = :pid and seq = :seq",
            link=link,
            key=forger.key_id,
            pid=pid,
            seq=step[1],
        )
    assert rows.instance_row is not None
    seal = forger.seal(link, rows.instance_row[:-3])
    edit(
        store,
        "update flow_instance set chain_link = :link, chain_seal = :seal, chain_key = :key"
        " where id = :pid",
        link=link,
        seal=seal,
        key=forger.key_id,
        pid=pid,
    )


# --- keys rotated, missing, required ---------------------------------------------------------


def test_rotation_keeps_old_rows_verifiable_and_key_ids_per_row(db_url: str) -> None:
    first = next(keyed(db_url, KEYS))
    pid = paid_path(first)
    rotated = next(keyed(db_url, AuditKeys(("k2", OTHER_SECRET), ("k1", SECRET))))
    engine = Engine(rotated, flows=FLOWS, clock=ManualClock(T0))
    engine.fire(pid, "report_pending", actor="status_inquiry", idempotency_key="k9")
    verdict = verdict_of(rotated, pid)
    assert (verdict.status, verdict.key_ids) == (ChainStatus.INTACT, ("k1", "k2"))
    assert "k1, k2" in verdict.protection
    only_new = verdict_of(rotated, pid, chain=Chain(AuditKeys(("k2", OTHER_SECRET))))
    assert only_new.status is ChainStatus.UNVERIFIED
    assert "'k1'" in (only_new.reason or "")
    without = verdict_of(rotated, pid, chain=Chain())
    assert without.status is ChainStatus.UNVERIFIED
    first.dispose()
    rotated.dispose()


def test_without_the_key_an_edit_that_breaks_the_order_is_still_tampered(
    signed: SqlStore,
) -> None:
    pid = paid_path(signed)
    edit(signed, "delete from transition_log where instance_id = :pid and seq = 2", pid=pid)
    verdict = verdict_of(signed, pid, chain=Chain())
    assert (verdict.status, verdict.seq) == (ChainStatus.TAMPERED, 2)


def test_no_secret_reaches_a_stored_row(signed: SqlStore) -> None:
    pid = paid_path(signed)
    with signed.engine.connect() as conn:
        dumped = str(conn.execute(text("select * from transition_log")).all())
        dumped += str(conn.execute(text("select * from flow_instance")).all())
    assert pid in dumped
    assert SECRET not in dumped


def test_the_memory_store_never_keeps_a_link_of_a_step_rolled_back() -> None:
    """Its links are made when read: one read inside a unit that then rolls back is dropped."""
    store = MemoryStore(audit_keys=KEYS)
    pid = paid_path(store)
    last = store.history(pid)[-1]
    undone = replace(last, seq=last.seq + 1, source=last.dest, idempotency_key="undone")
    with pytest.raises(RuntimeError):
        read_in_a_failing_unit(store, undone)
    engine = Engine(store, flows=FLOWS, clock=ManualClock(T0))
    engine.fire(pid, "report_pending", actor="status_inquiry", idempotency_key="k9")
    verdict = verdict_of(store, pid)
    assert (verdict.status, verdict.steps) == (ChainStatus.INTACT, len(PATH) + 1)
    assert next(iter(store.chained([pid]))).step_rows[-1][6] == "k9"


def read_in_a_failing_unit(store: MemoryStore, record: TransitionRecord) -> None:
    with store.unit() as unit:
        unit.apply(record, expected_version=record.seq - 1, deadline_at=None, bound={})
        assert next(iter(store.chained([record.instance_id]))).step_rows[-1][1] == record.seq
        raise RuntimeError("the unit fails after the read")
