"""Checkpoints: payments deleted or rolled back since one are tampered; one edited is refused.

On a copy of a database the demo filled (SQLite and PostgreSQL, with an audit key and with the
plain hash chain), ``ewallet-fsm checkpoint`` signs every chain head and ``verify --against``
holds the database against it. Every chain stays intact through these edits: only the
checkpoint tells.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, delete, select

from fsm import AuditKeys, Engine, ManualClock, SqlStore
from fsm.chain import Chain
from fsm.chain.checkpoint import Head, sign
from fsm.flows import FLOWS
from fsm.store.tables import INSTANCE_TABLE, LOG_TABLE
from tests.fsm.conftest import T0
from tests.test_audit import run_cli
from tests.test_tamper import KEY, Filled, audit_key, verify
from tests.test_tamper import copy as copy
from tests.test_tamper import filled as filled

Rows = tuple[list[dict[str, Any]], list[dict[str, Any]]]


@dataclass(frozen=True)
class Rig:
    """A copy of a filled database, the key it was signed with, where its checkpoint goes."""

    url: str
    key: str | None
    out: Path
    filled: Filled


@pytest.fixture
def rig(filled: Filled, copy: str, tmp_path: Path) -> Rig:
    return Rig(copy, KEY if filled.keyed else None, tmp_path / "checkpoint.json", filled)


def checkpoint(url: str, out: Path, key: str | None) -> dict[str, Any]:
    with audit_key(key):
        code, printed, err = run_cli("checkpoint", "--db", url, "--out", str(out), "--json")
    assert code == 0, err
    return dict(json.loads(printed))


@pytest.fixture
def engine(rig: Rig) -> Iterator[Engine]:
    """The engine on the copy, signing as the demo did."""
    keys = None if rig.key is None else AuditKeys.parse(rig.key)
    store = SqlStore(rig.url, audit_keys=keys)
    yield Engine(store, flows=FLOWS, clock=ManualClock(T0))
    store.dispose()


def registered(engine: Engine) -> str:
    """A new payment one step along: registration sent."""
    pid = engine.start("ewallet_payment", wallet="ovo", amount=1000).id
    engine.fire(pid, "send_registration", actor="merchant", idempotency_key="reg")
    return pid


def accept(engine: Engine, pid: str) -> None:
    reply = {"tx_id": f"TX-{pid}", "reference_no": pid}
    engine.fire(
        pid, "accept_registration", actor="provider_response", idempotency_key="ok", payload=reply
    )


def saved(url: str, pid: str) -> Rows:
    """The payment's rows as they are now: an older copy to restore later."""
    engine = create_engine(url)
    with engine.connect() as conn:
        instance = conn.execute(select(INSTANCE_TABLE).where(INSTANCE_TABLE.c.id == pid))
        log = conn.execute(select(LOG_TABLE).where(LOG_TABLE.c.instance_id == pid))
        rows = [dict(row._mapping) for row in instance], [dict(row._mapping) for row in log]
    engine.dispose()
    return rows


def restore(url: str, pid: str, rows: Rows | None) -> None:
    """Put back ``rows`` in place of the payment's rows (``None``: delete the payment)."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(delete(LOG_TABLE).where(LOG_TABLE.c.instance_id == pid))
        conn.execute(delete(INSTANCE_TABLE).where(INSTANCE_TABLE.c.id == pid))
        if rows is not None:
            conn.execute(INSTANCE_TABLE.insert(), rows[0])
            conn.execute(LOG_TABLE.insert(), rows[1])
    engine.dispose()


def against(url: str, out: Path, key: str | None, *argv: str) -> tuple[int, dict[str, Any]]:
    return verify(url, *(argv or ("--all",)), "--against", str(out), key=key)


def bad(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        i["instance"]: i["chain"] for i in report["instances"] if i["chain"]["status"] != "intact"
    }


def test_a_deleted_payment_is_tampered_against_the_checkpoint(rig: Rig) -> None:
    copy, key, out, filled = rig.url, rig.key, rig.out, rig.filled
    taken = checkpoint(copy, out, key)
    assert taken["payments"] == len(filled.payments)
    assert taken["keyed"] is filled.keyed
    gone = filled.payments["ovo-paid"]
    restore(copy, gone, None)
    code, _ = verify(copy, "--all", key=key)
    assert code == 0  # every chain left is intact: alone, the database cannot tell
    code, report = against(copy, out, key)
    assert code == 1
    (chain,) = bad(report).values()
    assert bad(report).keys() == {gone}
    assert chain["status"] == "tampered"
    assert "missing: it was deleted" in chain["reason"]
    assert "against the checkpoint" in chain["reason"]
    assert ("signed, key audit-1" if filled.keyed else "a plain digest, no key") in chain["reason"]
    code, alone = against(copy, out, key, gone)
    assert (code, alone["instances"][0]["chain"]["status"]) == (1, "tampered")
    assert report["checkpoint"]["protection"].startswith(
        "checkpoint signed" if filled.keyed else "checkpoint is a plain SHA-256 digest"
    )


def test_an_older_copy_of_a_payment_restored_is_tampered_against_the_checkpoint(
    rig: Rig, engine: Engine
) -> None:
    copy, key, out = rig.url, rig.key, rig.out
    pid = registered(engine)
    older = saved(copy, pid)
    accept(engine, pid)
    checkpoint(copy, out, key)
    restore(copy, pid, older)  # validly sealed when written, one step behind the checkpoint
    code, report = verify(copy, pid, key=key)
    assert (code, report["instances"][0]["chain"]["status"]) == (0, "intact")
    code, report = against(copy, out, key)
    assert code == 1
    assert bad(report).keys() == {pid}
    assert "1 steps where the checkpoint saw 2: rolled back" in bad(report)[pid]["reason"]
    # the same length along another branch: the head's step is not the one checkpointed
    engine.fire(pid, "fail_registration", actor="provider_response", idempotency_key="no")
    code, report = against(copy, out, key)
    assert code == 1
    chain = bad(report)[pid]
    assert (chain["status"], chain["seq"]) == ("tampered", 2)
    assert "not the one the checkpoint saw" in chain["reason"]
    (item,) = [i for i in report["instances"] if i["instance"] == pid]
    assert (item["replay"], item["divergence"]) == ("tampered", None)  # a valid history


def test_payments_that_go_on_after_the_checkpoint_stay_intact(rig: Rig, engine: Engine) -> None:
    copy, key, out = rig.url, rig.key, rig.out
    pid = registered(engine)
    checkpoint(copy, out, key)
    accept(engine, pid)
    engine.fire(pid, "request_payment", actor="merchant", idempotency_key="pay")
    newer = registered(engine)
    code, report = against(copy, out, key)
    assert code == 0, bad(report)
    assert {pid, newer} <= {i["instance"] for i in report["instances"]}


def test_an_edited_checkpoint_is_refused(rig: Rig) -> None:
    copy, key, out, filled = rig.url, rig.key, rig.out, rig.filled
    checkpoint(copy, out, key)
    original = json.loads(out.read_text(encoding="utf-8"))
    gone = filled.payments["ovo-paid"]
    restore(copy, gone, None)
    # the deleted payment's head dropped from the file: its digest tells
    edited = {**original, "heads": [h for h in original["heads"] if h[0] != gone]}
    edited["count"] = len(edited["heads"])
    refused = out.with_name("edited.json")
    refused.write_text(json.dumps(edited), encoding="utf-8")
    with audit_key(key):
        code, printed, err = run_cli(
            "verify", "--all", "--db", copy, "--against", str(refused), "--json"
        )
    assert (code, printed) == (2, "")
    assert "the checkpoint's heads do not match its digest: it was edited" in err
    for text_ in ("{not json", json.dumps({**original, "format": "other/1"})):
        refused.write_text(text_, encoding="utf-8")
        with audit_key(key):
            code, _, err = run_cli("verify", "--all", "--db", copy, "--against", str(refused))
        assert code == 2
        assert "checkpoint" in err
        assert "Traceback" not in err
    if filled.keyed:  # heads and digest made again, without the key: the signature tells
        heads = [Head(*head) for head in edited["heads"]]
        edited["digest"] = sign(Chain(), T0, heads).digest
        refused.write_text(json.dumps(edited), encoding="utf-8")
        with audit_key(key):
            code, _, err = run_cli("verify", "--all", "--db", copy, "--against", str(refused))
        assert code == 2
        assert "the checkpoint's signature does not match it: it was edited" in err
        # without its key a signed checkpoint is not taken on trust
        code, _, err = run_cli("verify", "--all", "--db", copy, "--against", str(out))
        assert code == 2
        assert "signed with key 'audit-1', which was not given" in err
    else:  # a key holder does not take a checkpoint anyone could have made, unless told to
        with audit_key(KEY):
            code, _, err = run_cli("verify", "--all", "--db", copy, "--against", str(out))
            assert code == 2
            assert "only hashed (no audit key) and a key is required" in err
            code, _, err = run_cli(
                "verify", "--all", "--accept-unkeyed", "--db", copy, "--against", str(out)
            )
            assert code == 1  # the checkpoint taken: the deleted payment is found


def test_no_checkpoint_vouches_for_a_tampered_chain(rig: Rig) -> None:
    copy, filled = rig.url, rig.filled
    engine = create_engine(copy)
    with engine.begin() as conn:
        conn.execute(
            LOG_TABLE.update()
            .where(LOG_TABLE.c.instance_id == filled.payments["ovo-paid"], LOG_TABLE.c.seq == 7)
            .values(actor="operator")
        )
    engine.dispose()
    with audit_key(rig.key):
        code, _, err = run_cli("checkpoint", "--db", copy, "--out", str(rig.out))
    assert code == 2
    assert f"{filled.payments['ovo-paid']}: chain tampered at step 7" in err
    assert not rig.out.exists()
