"""The operator's commands, run as installed: ``resolve``, ``list``'s filters and pages, ``--json``.

Every test runs the real ``ewallet-fsm`` in subprocesses, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from adapters.cli._serve import IMID_ENV, KEY_ENV
from adapters.reconcile.intents import Call
from adapters.reconcile.refund_repair import (
    LOST_AFTER_REPAIR,
    REPAIRED_NOT_REFUNDED,
    SETTLED_NOT_REFUNDED,
)
from fsm import Actor
from fsm.errors import RejectReason
from fsm.refunds import REQUEST_REFUND
from tests.adapters.refund_rig import RefundRig, refund_rig
from tests.cli_run import (
    CREDENTIALS,
    EXECUTABLE,
    Ran,
    awaiting_check,
    engine_at,
    ewallet_fsm,
    ewallet_fsm_many,
)

REASON = "NICEPAY's portal shows it paid; inquiry answers 9010"


def test_resolve_fires_an_operator_event_recorded_with_who_and_why(
    db_url: str, tmp_path: Path
) -> None:
    store, engine, clock = engine_at(db_url)
    pid = awaiting_check(engine, clock)
    store.dispose()
    argv = ("resolve", pid, "--event", "confirm_payment", "--reason", REASON, "--by", "alice")

    done = ewallet_fsm(*argv, "--db", db_url, "--json", cwd=tmp_path)
    assert done.code == 0, done.err
    data = done.json()
    assert (data["instance"], data["applied"], data["state"]) == (pid, True, "paid")
    step = data["transition"]
    assert (step["seq"], step["event"], step["from"], step["to"], step["actor"]) == (
        6,
        "confirm_payment",
        "status_check_requested",
        "paid",
        "operator",
    )
    assert step["idempotency_key"] == "resolve:v5:confirm_payment"
    assert step["payload"] == {"operator": "alice", "reason": REASON}
    history = ewallet_fsm("history", pid, "--db", db_url, "--json", cwd=tmp_path).json()
    assert history["transitions"][-1] == step

    # the same command again: the payment moved on, so it is refused and nothing is recorded
    again = ewallet_fsm(*argv, "--db", db_url, cwd=tmp_path)
    line = again.assert_one_line_error()
    allowed = [e for e in engine.allowed_events(pid, actor=Actor.OPERATOR) if e != "request_refund"]
    assert "refund_payment" in allowed  # a refund request is cancel's, never resolve's
    assert line == (
        f"ewallet-fsm: error: event 'confirm_payment' refused in state 'paid' of '{pid}': "
        f"not_allowed (an operator may fire here: {', '.join(allowed) or 'nothing'})"
    )
    assert engine.get(pid).version == 6
    assert engine.rejections(pid) == []
    store.dispose()


def test_identical_resolves_at_once_apply_once(db_url: str, tmp_path: Path) -> None:
    store, engine, clock = engine_at(db_url)
    pid = awaiting_check(engine, clock)
    argv = [
        str(EXECUTABLE),
        *("resolve", pid, "--event", "fail_payment", "--reason", REASON, "--by", "bob"),
        *("--db", db_url),
    ]
    runs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # noqa: S603
        for _ in range(4)
    ]
    outcomes = [(run.wait(timeout=120), *run.communicate()) for run in runs]
    operator_steps = [r for r in engine.history(pid) if r.actor == Actor.OPERATOR]
    assert [(r.event, r.idempotency_key) for r in operator_steps] == [
        ("fail_payment", "resolve:v5:fail_payment")
    ]
    assert engine.get(pid).state == "failed"
    applied = [out for code, out, _err in outcomes if code == 0 and "applied as step 6" in out]
    assert len(applied) >= 1
    for code, out, err in outcomes:
        assert "Traceback" not in err
        assert len((out + err).splitlines()) == 1, (out, err)
        assert code == 0 or (code == 2 and "refused in state 'failed'" in err), (code, err)
    store.dispose()


@pytest.mark.parametrize(
    ("event", "why"),
    [("send_registration", "merchant only"), ("teleport", "no such event")],
)
def test_resolve_refuses_what_an_operator_may_not_fire(
    db_url: str, tmp_path: Path, event: str, why: str
) -> None:
    store, engine, _clock = engine_at(db_url)
    pid = engine.start("ewallet_payment", instance_id="pay-1", wallet="ovo", amount=25000).id
    done = ewallet_fsm(
        *("resolve", pid, "--event", event, "--reason", why, "--by", "carol", "--db", db_url),
        cwd=tmp_path,
    )
    allowed = ", ".join(engine.allowed_events(pid, actor=Actor.OPERATOR)) or "nothing"
    assert done.assert_one_line_error().endswith(f"(an operator may fire here: {allowed})")
    assert (engine.get(pid).version, engine.rejections(pid)) == (0, [])
    store.dispose()


def test_resolve_attaches_an_astrapay_mandate(db_url: str, tmp_path: Path) -> None:
    store, engine, _clock = engine_at(db_url)
    link = engine.start("astrapay_link", instance_id="link-1", wallet="astrapay").id
    engine.fire(
        link, "confirm_link_without_mandate", actor="provider_notification", idempotency_key="n1"
    )
    base = ("resolve", link, "--reason", "mandate read from the partner portal", "--by", "dina")
    missing, wrong, bad = ewallet_fsm_many(
        [
            (*base, "--event", "attach_mandate", "--db", db_url),
            (*base, "--event", "fail_link", "--mandate", "MDT-1", "--db", db_url),
            (*base, "--event", "attach_mandate", "--mandate", "x" * 65, "--db", db_url),
        ],
        cwd=tmp_path,
    )
    assert missing.assert_one_line_error() == (
        "ewallet-fsm: error: 'attach_mandate' needs --mandate"
    )
    assert wrong.assert_one_line_error() == (
        "ewallet-fsm: error: --mandate: 'fail_link' does not store it"
    )
    assert "--mandate must be 1 to 64 characters" in bad.assert_one_line_error()
    assert engine.get(link).state == "mandate_missing"

    done = ewallet_fsm(
        *base, "--event", "attach_mandate", "--mandate", "MDT-0042", "--db", db_url, cwd=tmp_path
    )
    assert done.code == 0, done.err
    assert done.out == (
        f"{link}: attach_mandate applied as step 2 (mandate_missing -> linked) "
        "by dina: mandate read from the partner portal\n"
    )
    stored = engine.get(link)
    assert (stored.state, stored.mandate) == ("linked", "MDT-0042")
    assert engine.history(link)[-1].payload["mandate"] == "MDT-0042"
    store.dispose()


def listed(db_url: str, tmp_path: Path, *options: str) -> dict[str, Any]:
    done = ewallet_fsm("list", "--db", db_url, "--json", *options, cwd=tmp_path)
    assert done.code == 0, done.err
    data: dict[str, Any] = done.json()
    return data


def test_list_filters_pages_and_says_when_there_is_more(db_url: str, tmp_path: Path) -> None:
    store, engine, clock = engine_at(db_url)
    wallets = ["ovo", "dana", "linkaja", "shopeepay", "dana"]
    for n, wallet in enumerate(wallets):
        engine.start("ewallet_payment", instance_id=f"pay-{n}", wallet=wallet, reference_no=f"R{n}")
        clock.advance(timedelta(minutes=1))
    awaiting_check(engine, clock, "pay-5")
    engine.start("astrapay_link", instance_id="link-6", wallet="astrapay")
    newest_first = ["link-6", "pay-5", "pay-4", "pay-3", "pay-2", "pay-1", "pay-0"]

    seen, cursor, pages = [], None, 0
    while True:
        page = listed(db_url, tmp_path, "--limit", "3", *(["--cursor", cursor] if cursor else []))
        seen += [i["id"] for i in page["instances"]]
        pages += 1
        assert page["more"] == (page["next_cursor"] is not None)
        if not page["more"]:
            break
        cursor = page["next_cursor"]
    assert (seen, pages) == (newest_first, 3)

    text_page = ewallet_fsm("list", "--db", db_url, "--limit", "2", cwd=tmp_path)
    header, _rule, *rows, _blank, more = text_page.out.splitlines()
    assert header.split() == [
        *("id", "flow", "wallet", "state", "version", "referenceNo", "created", "(UTC)")
    ]
    assert [row.split()[0] for row in rows] == newest_first[:2]
    assert more.startswith("more instances match: add --cursor ")
    rest = listed(db_url, tmp_path, "--limit", "10", "--cursor", more.split()[-1])
    assert [i["id"] for i in rest["instances"]] == newest_first[2:]

    def ids(*options: str) -> list[str]:
        return [i["id"] for i in listed(db_url, tmp_path, *options)["instances"]]

    since = (clock.now() - timedelta(minutes=2, seconds=30)).isoformat()  # after pay-3
    assert ids("--wallet", "dana") == ["pay-4", "pay-1"]
    assert ids("--flow", "astrapay_link") == ["link-6"]
    assert ids("--state", "status_check_requested") == ["pay-5"]
    assert ids("--reference", "R3") == ["pay-3"]
    assert ids("--since", since) == ["link-6", "pay-5", "pay-4"]
    assert ids("--since", since, "--wallet", "dana", "--state", "checkout_requested") == ["pay-4"]
    assert ids("--due") == newest_first  # every deadline passed years ago
    store.dispose()

    none = ewallet_fsm("list", "--db", db_url, "--reference", "nope", cwd=tmp_path)
    assert (none.code, none.out) == (0, "no instances match\n")


def test_list_refuses_bad_filters_in_one_line(db_url: str, tmp_path: Path) -> None:
    engine_at(db_url)[0].dispose()
    runs = ewallet_fsm_many(
        [
            ("list", "--db", db_url, "--since", "2026-01-01T00:00"),
            ("list", "--db", db_url, "--state", "needs-reviw"),
            ("list", "--db", db_url, "--flow", "ewallet_payment", "--state", "linked"),
            ("list", "--db", db_url, "--wallet", "gopay"),
            ("list", "--db", db_url, "--limit", "0"),
            ("list", "--db", db_url, "--cursor", "bm90IGEgY3Vyc29y"),
        ],
        cwd=tmp_path,
    )
    lines = [run.assert_one_line_error() for run in runs]
    assert lines[0] == (
        "ewallet-fsm: error: --since '2026-01-01T00:00' has no timezone (add Z or +07:00)"
    )
    assert (
        lines[1] == "ewallet-fsm: error: --state 'needs-reviw': no built-in flow has such a state"
    )
    assert lines[2].startswith(
        "ewallet-fsm: error: --state 'linked': flow ewallet_payment has none; its states: "
    )
    assert lines[3].startswith("ewallet-fsm list: error: argument --wallet: invalid choice:")
    assert lines[4] == (
        "ewallet-fsm list: error: argument --limit: 0 is not a whole number from 1 to 1000 "
        "(see `ewallet-fsm list --help`)"
    )
    assert lines[5] == "ewallet-fsm: error: 'bm90IGEgY3Vyc29y' is not a cursor a listing gave"


def test_reconcile_json_reports_a_damaged_instance_and_acts_on_the_rest(
    db_url: str, tmp_path: Path
) -> None:
    store, engine, clock = engine_at(db_url)
    for n in range(3):
        engine.start("ewallet_payment", instance_id=f"pay-{n}", wallet="ovo")
        clock.advance(timedelta(seconds=1))
    with store.engine.begin() as conn:
        conn.execute(text("update flow_instance set state = 'limbo' where id = 'pay-0'"))
    store.dispose()
    done = ewallet_fsm(
        *("reconcile", "--once", "--json", "--db", db_url),
        *("--nicepay-url", "http://127.0.0.1:9/nicepay"),  # nothing due asks NICEPAY
        cwd=tmp_path,
        env=CREDENTIALS,
    )
    assert done.code == 1, done.err  # a skipped instance is a failure to report
    assert len(done.out.splitlines()) == 1  # one pass, one line of JSON
    data = done.json()
    assert data["repairs"] == []
    assert data["failed"] is True
    runs = {run["instance_id"]: run for run in data["deadlines"]}
    assert list(runs) == ["pay-0", "pay-1", "pay-2"]
    assert runs["pay-0"]["error"] == "skipped: state 'limbo' is not a state of ewallet_payment"
    for pid in ("pay-1", "pay-2"):
        assert runs[pid]["error"] is None
        assert runs[pid]["after"] != runs[pid]["before"]
    assert engine.get("pay-1").state == runs["pay-1"]["after"]
    store.dispose()


def test_resolve_settles_a_void_and_a_refund_with_the_refunded_total(
    db_url: str, tmp_path: Path
) -> None:
    store, engine, clock = engine_at(db_url)
    voided, refunded = awaiting_check(engine, clock), awaiting_check(engine, clock, "pay-2")
    store.dispose()
    base = ("--reason", REASON, "--by", "alice", "--db", db_url, "--json")

    done = ewallet_fsm("resolve", voided, "--event", "void_payment", *base, cwd=tmp_path)
    assert done.code == 0, done.err
    assert done.json()["state"] == "voided"
    assert engine.get(voided).refunded_amount == engine.get(voided).amount  # a void: all of it

    missing = ewallet_fsm("resolve", refunded, "--event", "refund_payment", *base, cwd=tmp_path)
    assert missing.assert_one_line_error() == (
        "ewallet-fsm: error: 'refund_payment' needs --refunded-amount"
    )
    too_much = ("resolve", refunded, "--event", "refund_payment", "--refunded-amount", "25001")
    assert ewallet_fsm(*too_much, *base, cwd=tmp_path).assert_one_line_error() == (
        "ewallet-fsm: error: --refunded-amount: '25001' is not a whole amount from 0 to 25000"
    )
    request = ("resolve", refunded, "--event", "request_refund")
    assert "request_refund" in ewallet_fsm(*request, *base, cwd=tmp_path).assert_one_line_error()
    argv = ("resolve", refunded, "--event", "refund_payment", "--refunded-amount", "400")
    done = ewallet_fsm(*argv, *base, cwd=tmp_path)
    assert done.code == 0, done.err
    after = engine.get(refunded)
    assert (after.state, after.refunded_amount) == ("refunded", "400")
    assert done.json()["transition"]["payload"]["refunded_amount"] == "400"
    store.dispose()


def lost_refund(rig: RefundRig) -> str:
    """A payment NICEPAY holds as paid, nothing refunded, whose refund request ``rf-1`` (400)
    a repair left in doubt: its cancel's answer was lost after the repair closed it, while
    another cancel was open."""
    pid = rig.paid("cli-settle").id
    payload = {"amount": "400", "request_id": "rf-1", "reason": "", "refunded_before": "0"}
    rig.engine.fire(
        pid, REQUEST_REFUND, actor=Actor.MERCHANT, idempotency_key="refund:rf-1", payload=payload
    )
    calls, at = rig.service.calls, rig.clock.now()
    intent = calls.record(
        pid, Call.CANCEL, at=at, amount="400", exclusive=True, call_key="refund:rf-1"
    )
    calls.finish(intent, outcome=REPAIRED_NOT_REFUNDED, at=at)
    assert calls.overrule(intent, closed_as=REPAIRED_NOT_REFUNDED, outcome=LOST_AFTER_REPAIR, at=at)
    return pid


def test_settle_refund_settles_a_refund_left_in_doubt_recorded_with_who_and_why(
    db_url: str, tmp_path: Path
) -> None:
    with refund_rig(db_url) as rig:
        pid = lost_refund(rig)
        engine, calls = rig.engine, rig.service.calls
        config = rig.nicepay.config
        env = {IMID_ENV: config.imid, KEY_ENV: config.merchant_key.get_secret_value()}
        base = ("--reason", REASON, "--by", "alice", "--db", db_url, "--nicepay-url")

        def settle(*argv: str) -> Ran:
            return ewallet_fsm(
                "settle-refund", pid, *argv, *base, rig.nicepay.url, cwd=tmp_path, env=env
            )

        # NICEPAY's fresh total (nothing refunded) cannot hold it: nobody may call it refunded.
        assert "NICEPAY's refunded total says it is repaired:not_refunded" in (
            settle("rf-1", "--as", "refunded").assert_one_line_error()
        )
        unknown = settle("rf-9", "--as", "refunded")
        assert "there is no such refund request" in unknown.assert_one_line_error()
        assert [i.outcome for i in calls.of_instance(pid) if i.call == Call.CANCEL] == [
            LOST_AFTER_REPAIR
        ]
        done = settle("rf-1", "--as", "not_refunded", "--json")
        assert done.code == 0, done.err
        assert done.json() == {
            "instance": pid,
            "request_id": "rf-1",
            "amount": "400",
            "outcome": SETTLED_NOT_REFUNDED,
        }
        (note,) = [r for r in engine.rejections(pid) if r.actor == Actor.OPERATOR]
        assert (note.event, note.reason) == ("settle_refund", RejectReason.SETTLED_BY_HAND)
        assert (note.payload["operator"], note.payload["reason"]) == ("alice", REASON)
        again = settle("rf-1", "--as", "not_refunded", "--json")
        assert "it is closed settled:not_refunded" in again.assert_one_line_error()
        assert len([r for r in engine.rejections(pid) if r.actor == Actor.OPERATOR]) == 1
