"""``ewallet-fsm reseal``: a key holder seals intact hash-only chains, and refuses broken ones.

On copies of the demo's databases (SQLite and PostgreSQL). A hash-only database is what a
database migrated from before the audit chain, or written with no key, holds.
"""

from __future__ import annotations

import json
from typing import Any

from fsm import AuditKeys, Engine, ManualClock, SqlStore
from fsm.flows import FLOWS
from tests.fsm.conftest import T0
from tests.test_audit import run_cli
from tests.test_tamper import EDITS, KEY, Filled, apply, audit_key, verify
from tests.test_tamper import copy as copy  # the fixtures, used by name
from tests.test_tamper import filled as filled


def reseal(url: str, *argv: str, key: str | None) -> tuple[int, dict[str, Any], str]:
    with audit_key(key):
        code, out, err = run_cli("reseal", *(argv or ("--all",)), "--db", url, "--json")
    assert "Traceback" not in err
    return code, json.loads(out) if out else {}, err


def outcomes(report: dict[str, Any]) -> dict[str, str]:
    return {item["instance"]: item["outcome"] for item in report["instances"]}


def test_intact_hash_only_chains_are_sealed_with_the_key(filled: Filled, copy: str) -> None:
    code, report, _ = reseal(copy, key=KEY)
    assert code == 0
    expected = "already keyed" if filled.keyed else "resealed"
    assert set(outcomes(report).values()) == {expected}
    assert report[expected] == len(filled.payments)
    code, verified = verify(copy, "--all", key=KEY)  # no --accept-unkeyed needed now
    assert code == 0, verified
    assert {tuple(i["chain"]["key_ids"]) for i in verified["instances"]} == {("audit-1",)}
    code, again, _ = reseal(copy, key=KEY)
    assert (code, set(outcomes(again).values())) == (0, {"already keyed"})
    code, unkeyed = verify(copy, "--all", key=None)  # without the key: unverified, never intact
    assert {i["chain"]["status"] for i in unkeyed["instances"]} == {"unverified"}


def test_a_broken_plain_chain_is_refused_and_left_as_it_is(filled: Filled, copy: str) -> None:
    edit = EDITS["settling actor changed to operator"]
    broken = filled.payments[edit.scenario]
    apply(copy, edit, broken)
    code, report, _ = reseal(copy, key=KEY)
    assert code == 1
    assert outcomes(report)[broken] == "refused"
    (refused,) = [i for i in report["instances"] if i["instance"] == broken]
    assert refused["reason"].startswith("tampered at step 7")
    assert report["refused"] == 1
    code, verified = verify(copy, broken, key=KEY)
    chain = verified["instances"][0]["chain"]
    assert (code, chain["status"], chain["seq"]) == (1, "tampered", 7)
    assert chain["key_ids"][0] == ("audit-1" if filled.keyed else "sha256")


def test_a_chain_begun_without_the_key_and_continued_with_it_is_sealed_whole(
    filled: Filled, copy: str
) -> None:
    plain = SqlStore(copy)
    engine = Engine(plain, flows=FLOWS, clock=ManualClock(T0))
    pid = engine.start("ewallet_payment", wallet="ovo", amount=1000).id
    engine.fire(pid, "send_registration", actor="merchant", idempotency_key="reg")
    plain.dispose()
    keyed = SqlStore(copy, audit_keys=AuditKeys.parse(KEY))
    reply = {"tx_id": f"TX-{pid}", "reference_no": pid}
    Engine(keyed, flows=FLOWS, clock=ManualClock(T0)).fire(
        pid, "accept_registration", actor="provider_response", idempotency_key="ok", payload=reply
    )
    keyed.dispose()
    code, before = verify(copy, pid, key=KEY)
    chain = before["instances"][0]["chain"]
    assert (chain["status"], chain["key_ids"]) == ("unverified", ["sha256", "audit-1"])
    code, report, _ = reseal(copy, pid, key=KEY)
    assert (code, outcomes(report)) == (0, {pid: "resealed"})
    code, after = verify(copy, pid, key=KEY)
    chain = after["instances"][0]["chain"]
    assert (code, chain["status"], chain["key_ids"], chain["steps"]) == (
        0,
        "intact",
        ["audit-1"],
        2,
    )


def test_resealing_needs_a_key(copy: str) -> None:
    code, report, err = reseal(copy, key=None)
    assert (code, report) == (2, {})
    assert "resealing needs an audit key" in err
    code, _, err = reseal(copy, "some-id", "--all", key=KEY)
    assert code == 2
    assert "ewallet-fsm reseal: error: give either ID or --all" in err
