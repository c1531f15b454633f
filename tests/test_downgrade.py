"""A signed chain continued without the key: tampered, and nothing vouches for it.

Someone with the database but not the audit key cannot write a signed step, so a chain whose
first steps are signed and whose later ones are only hashed was written or rewritten by such a
someone. ``verify`` names it tampered (with and without ``--accept-unkeyed``, and without the
key), ``reseal`` and ``checkpoint`` refuse it, and a store without the key refuses to extend a
signed chain in the first place. On copies of the demo's databases (SQLite and PostgreSQL).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from fsm import AuditKeys, ConfigurationError, Engine, ManualClock, SqlStore
from fsm.flows import FLOWS
from fsm.store.reseal import Outcome, reseal
from fsm.store.tables import INSTANCE_TABLE
from tests.fsm.conftest import T0
from tests.test_audit import run_cli
from tests.test_reseal import KEY_SET
from tests.test_tamper import KEY, audit_key, verify
from tests.test_tamper import copy as copy  # the fixtures, used by name
from tests.test_tamper import filled as filled


def signed_then_registered(url: str) -> str:
    """A payment whose first step the key holder signed."""
    keyed = SqlStore(url, audit_keys=AuditKeys.parse(KEY))
    engine = Engine(keyed, flows=FLOWS, clock=ManualClock(T0))
    pid = engine.start("ewallet_payment", wallet="ovo", amount=1000).id
    engine.fire(pid, "send_registration", actor="merchant", idempotency_key="reg")
    keyed.dispose()
    return pid


def accept_without_the_key(url: str, pid: str) -> None:
    plain = SqlStore(url)  # the database, not the key
    reply = {"tx_id": f"TX-{pid}", "reference_no": pid}
    try:
        Engine(plain, flows=FLOWS, clock=ManualClock(T0)).fire(
            pid,
            "accept_registration",
            actor="provider_response",
            idempotency_key="ok",
            payload=reply,
        )
    finally:
        plain.dispose()


def sealed_by(url: str, pid: str) -> tuple[int, str]:
    engine = create_engine(url)
    with engine.connect() as conn:
        found = select(INSTANCE_TABLE.c.version, INSTANCE_TABLE.c.chain_key)
        version, key_id = conn.execute(found.where(INSTANCE_TABLE.c.id == pid)).one()
    engine.dispose()
    return version, key_id


def downgraded(url: str) -> str:
    """A payment signed at step 1, then moved to step 2 by an editor without the key: it marks
    the seal hash-only (which a keyless store then extends) and writes the step through it."""
    pid = signed_then_registered(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            INSTANCE_TABLE.update().where(INSTANCE_TABLE.c.id == pid).values(chain_key="sha256")
        )
    engine.dispose()
    accept_without_the_key(url, pid)
    assert sealed_by(url, pid) == (2, "sha256")
    return pid


def test_a_store_without_the_key_refuses_to_extend_a_signed_chain(copy: str) -> None:
    pid = signed_then_registered(copy)
    with pytest.raises(ConfigurationError, match="signed with key 'audit-1' and this store"):
        accept_without_the_key(copy, pid)
    assert sealed_by(copy, pid) == (1, "audit-1")  # nothing was stored
    code, report = verify(copy, pid, key=KEY)
    assert (code, report["instances"][0]["chain"]["status"]) == (0, "intact")


def test_a_hash_only_step_after_a_signed_one_is_tampered(copy: str, tmp_path: Path) -> None:
    pid = downgraded(copy)
    report_file = tmp_path / "audit.html"
    with audit_key(KEY):
        code, _, _ = run_cli("audit", pid, "-o", str(report_file), "--db", copy)
    assert code == 1
    html = report_file.read_text(encoding="utf-8")
    assert 'data-chain="tampered"' in html
    assert "The audit chain breaks at step 2: step 2 is only hashed (no audit key)" in html
    for key, argv in ((KEY, ()), (KEY, ("--accept-unkeyed",)), (None, ())):
        code, report = verify(copy, pid, *argv, key=key)
        chain = report["instances"][0]["chain"]
        assert (code, chain["status"], chain["seq"]) == (1, "tampered", 2), (argv, chain)
        assert chain["reason"].startswith(
            "step 2 is only hashed (no audit key) after steps signed with key 'audit-1'"
        )
        assert chain["key_ids"] == ["audit-1", "sha256"]


def test_a_hash_only_seal_over_signed_steps_is_tampered(copy: str) -> None:
    pid = signed_then_registered(copy)
    engine = create_engine(copy)
    with engine.begin() as conn:  # the seal alone redone as a hash: only a keyless editor can
        conn.execute(
            INSTANCE_TABLE.update().where(INSTANCE_TABLE.c.id == pid).values(chain_key="sha256")
        )
    engine.dispose()
    for key in (KEY, None):
        code, report = verify(copy, pid, "--accept-unkeyed", key=key)
        chain = report["instances"][0]["chain"]
        assert (code, chain["status"], chain["where"]) == (1, "tampered", "the instance row")
        assert chain["reason"].startswith("the instance row's seal is only hashed")


def test_reseal_refuses_a_downgraded_chain(copy: str) -> None:
    pid = downgraded(copy)
    keyed = SqlStore(copy, audit_keys=AuditKeys.parse(KEY))
    try:
        (done,) = reseal(keyed, [pid], before=T0.replace(year=2100))
    finally:
        keyed.dispose()
    assert (done.outcome, done.key_id) == (Outcome.REFUSED, "audit-1")
    assert (done.reason or "").startswith("tampered at step 2: step 2 is only hashed")
    assert sealed_by(copy, pid) == (2, "sha256")  # left as it is
    with audit_key(KEY):
        code, out, _ = run_cli("reseal", pid, "--before", KEY_SET, "--db", copy)
    assert code == 1
    assert f"{pid}: refused, 2 steps, key audit-1: tampered at step 2" in out


def test_no_checkpoint_vouches_for_a_downgraded_chain(copy: str, tmp_path: Path) -> None:
    pid = downgraded(copy)
    out = tmp_path / "checkpoint.json"
    for key in (KEY, None):
        with audit_key(key):
            code, _, err = run_cli("checkpoint", "--db", copy, "--out", str(out))
        assert code == 2
        assert f"{pid}: chain tampered at step 2: step 2 is only hashed" in err
        assert not out.exists()
