"""``ewallet-fsm reseal``: a key holder seals intact hash-only chains, and refuses broken ones.

On copies of the demo's databases (SQLite and PostgreSQL). A hash-only database is what a
database migrated from before the audit chain, or written with no key, holds.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from fsm import AuditKeys, Engine, ManualClock, SqlStore
from fsm.flows import FLOWS
from tests.fsm.conftest import T0
from tests.test_audit import run_cli
from tests.test_tamper import EDITS, KEY, Filled, apply, audit_key, verify
from tests.test_tamper import copy as copy  # the fixtures, used by name
from tests.test_tamper import filled as filled

KEY_SET = "2100-01-01T00:00:00+00:00"
"""The cutoff: when the key was set, after everything the demo and the tests write."""


def reseal(
    url: str, *argv: str, key: str | None, before: str = KEY_SET
) -> tuple[int, dict[str, Any], str]:
    argv = (*(argv or ("--all",)), "--before", before)
    with audit_key(key):
        code, out, err = run_cli("reseal", *argv, "--db", url, "--json")
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


def test_a_payment_in_flight_when_the_key_was_set_is_resealed_whole(
    filled: Filled, copy: str
) -> None:
    plain = SqlStore(copy)
    engine = Engine(plain, flows=FLOWS, clock=ManualClock(T0))
    pid = engine.start("ewallet_payment", wallet="ovo", amount=1000).id
    engine.fire(pid, "send_registration", actor="merchant", idempotency_key="reg")
    plain.dispose()
    keyed = SqlStore(copy, audit_keys=AuditKeys.parse(KEY))
    reply = {"tx_id": f"TX-{pid}", "reference_no": pid}
    Engine(keyed, flows=FLOWS, clock=ManualClock(T0 + timedelta(hours=1))).fire(
        pid, "accept_registration", actor="provider_response", idempotency_key="ok", payload=reply
    )
    keyed.dispose()
    code, before = verify(copy, pid, key=KEY)
    chain = before["instances"][0]["chain"]
    assert (code, chain["status"], chain["key_ids"]) == (1, "unverified", ["sha256", "audit-1"])

    # The key was set between its hash-only step and its signed one.
    set_at = (T0 + timedelta(minutes=30)).isoformat()
    code, report, _ = reseal(copy, pid, key=KEY, before=T0.isoformat())
    assert (code, outcomes(report)) == (1, {pid: "refused"})  # a hash-only step after the cutoff
    code, report, _ = reseal(copy, pid, key=KEY, before=set_at)
    assert (code, outcomes(report)) == (0, {pid: "resealed"})

    code, after = verify(copy, pid, key=KEY)
    assert (code, after["instances"][0]["chain"]["key_ids"]) == (0, ["audit-1"])


def test_only_chains_last_moved_before_the_cutoff_are_resealed(filled: Filled, copy: str) -> None:
    code, report, _ = reseal(copy, key=KEY, before="2000-01-01T00:00:00+00:00")
    if filled.keyed:
        assert (code, set(outcomes(report).values())) == (0, {"already keyed"})
        return
    assert (code, set(outcomes(report).values())) == (1, {"refused"})
    reasons = {item["reason"].split(", is not", 1)[-1] for item in report["instances"]}
    assert reasons == {
        " before the cutoff 2000-01-01T00:00:00+00:00: rows hashed after the key was set"
        " were written without it"
    }
    code, unchanged = verify(copy, "--all", key=None)
    assert code == 0
    assert {tuple(i["chain"]["key_ids"]) for i in unchanged["instances"]} == {("sha256",)}
    code, _, err = reseal(copy, key=KEY, before="2000-01-01T00:00:00")
    assert code == 2
    assert "--before '2000-01-01T00:00:00' has no timezone" in err


def test_resealing_needs_a_key_and_a_cutoff(copy: str) -> None:
    code, report, err = reseal(copy, key=None)
    assert (code, report) == (2, {})
    assert "resealing needs an audit key" in err
    code, _, err = reseal(copy, "some-id", "--all", key=KEY)
    assert code == 2
    assert "ewallet-fsm reseal: error: give either ID or --all" in err
    with audit_key(KEY), pytest.raises(SystemExit) as refused:  # argparse: a required option
        run_cli("reseal", "--all", "--db", copy)
    assert refused.value.code == 2


def test_chains_signed_with_a_key_not_given_are_refused(filled: Filled, copy: str) -> None:
    if not filled.keyed:
        pytest.skip("only a keyed database names a key")
    code, report, _ = reseal(copy, key="audit-2:another-long-enough-secret")
    assert (code, set(outcomes(report).values())) == (1, {"refused"})
    assert {i["reason"] for i in report["instances"]} == {
        "rows are signed with key 'audit-1', not given"
    }
