"""The command with flow versions: the release lock, moving instances, version diffs, exports.

A service points the command at its own catalog with ``--flows MODULE:NAME``; here that is
tests/flow_versions.py, which ships v2 of the e-wallet payment.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from adapters.cli import main
from fsm import ConfigurationError, Engine, ManualClock, SqlStore
from fsm.definition.release import check_lock, locked, read_lock
from fsm.flows import FLOWS, RELEASE_LOCK
from fsm.render.audit import audit_html
from fsm.replay import replay_instance
from tests.flow_versions import CATALOG, EDITED, EWALLET_PAYMENT_V2, FIRST
from tests.fsm.conftest import T0

V2 = ("--flows", "tests.flow_versions:CATALOG")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_committed_lock_holds_every_built_in_flow_version() -> None:
    report = check_lock(FLOWS, read_lock(RELEASE_LOCK))
    assert (report.changed, report.unreleased) == ((), ())


def first_versions_lock() -> dict[str, dict[str, str]]:
    """The committed lock as it was before any second version shipped."""
    return {name: {"1": versions["1"]} for name, versions in read_lock(RELEASE_LOCK).items()}


def test_releasing_adds_new_versions_and_refuses_to_release_over_a_changed_one() -> None:
    committed = read_lock(RELEASE_LOCK)
    assert locked(FLOWS, committed) == committed
    first = first_versions_lock()
    released = locked(CATALOG, first)
    assert released["ewallet_payment"] == {
        "1": FIRST["ewallet_payment"].fingerprint,
        "2": EWALLET_PAYMENT_V2.fingerprint,
    }
    with pytest.raises(ConfigurationError, match="ewallet_payment v1 changed since its release"):
        locked(EDITED, first)
    with pytest.raises(ConfigurationError, match="ewallet_payment v2 changed since its release"):
        locked(CATALOG, committed)  # the library's own v2 holds that number


def test_check_passes_while_every_released_version_is_unchanged(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lock = tmp_path / "released.json"
    lock.write_text(json.dumps(first_versions_lock()))
    code, out, _ = run(capsys, *V2, "check", "--json", "--lock", str(lock))
    report = json.loads(out)
    assert (code, report["valid"], report["lock"]["changed"]) == (0, True, [])
    assert report["lock"]["unreleased"] == [
        f"ewallet_payment v2 is new ({EWALLET_PAYMENT_V2.fingerprint})"
    ]
    assert ("ewallet_payment", 2) in {(f["flow"], f["version"]) for f in report["flows"]}


def test_check_fails_when_a_released_version_changed_without_a_new_number(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "--flows", "tests.flow_versions:EDITED", "check")
    assert code == 1
    assert "release lock: ewallet_payment v1 changed since its release" in out
    assert "ship the change as version 2" in out


def test_check_fails_when_a_released_version_is_dropped(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lock = tmp_path / "released.json"
    lock.write_text(
        json.dumps(
            {
                "ewallet_payment": {
                    "1": FIRST["ewallet_payment"].fingerprint,
                    "3": "sha256:0000000000000000",
                }
            }
        )
    )
    code, out, _ = run(capsys, "check", "--lock", str(lock))
    assert code == 1
    assert "ewallet_payment v3 was released but the code no longer has it" in out


def test_a_flows_option_that_does_not_load_is_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "--flows", "tests.flow_versions:NOTHING", "check")
    assert (code, out) == (2, "")
    assert err.startswith("ewallet-fsm: --flows 'tests.flow_versions:NOTHING'")
    assert len(err.splitlines()) == 1


@pytest.fixture
def v1_database(db_url: str) -> tuple[str, list[str]]:
    """A database holding v1 payments: one paid, one waiting at checkout."""
    store = SqlStore(db_url)
    store.create_schema()
    clock = ManualClock(T0)
    engine = Engine(store, flows=FIRST, clock=clock)
    paid = engine.start("ewallet_payment", instance_id="pay-paid", wallet="ovo", amount=10).id
    for event, actor, payload in [
        ("send_registration", "merchant", {}),
        ("accept_registration", "provider_response", {"tx_id": "TX1", "reference_no": "R1"}),
        ("check_status", "merchant", {}),
        ("confirm_payment", "status_inquiry", {}),
    ]:
        clock.advance(timedelta(seconds=5))
        engine.fire(paid, event, actor=actor, idempotency_key=event, payload=payload)
    waiting = engine.start("ewallet_payment", instance_id="pay-wait", wallet="dana", amount=20).id
    store.dispose()
    return db_url, [paid, waiting]


def test_migrate_moves_in_flight_payments_and_replay_names_both_versions(
    capsys: pytest.CaptureFixture[str], v1_database: tuple[str, list[str]]
) -> None:
    url, (paid, waiting) = v1_database
    move = (*V2, "migrate", "ewallet_payment", "--from", "1", "--to", "2", "--db", url)

    code, out, _ = run(capsys, *move, "--dry-run", "--by", "on-call", "--json")
    planned = json.loads(out)
    assert (code, planned["dry_run"]) == (0, True)
    assert [(i["id"], i["step"]) for i in planned["instances"]] == [(paid, None), (waiting, None)]
    code, out, _ = run(capsys, *V2, "replay", waiting, "--db", url, "--json")
    assert json.loads(out)["versions"] == []  # the dry run wrote nothing

    code, out, _ = run(capsys, *move, "--by", "on-call")
    assert code == 0
    assert out.startswith("ewallet_payment: moved 2 from v1 to v2\n")

    code, out, _ = run(capsys, *V2, "replay", paid, "--db", url, "--json")
    replayed = json.loads(out)
    assert (code, replayed["verdict"], replayed["versions"]) == (0, "consistent", [1, 2])
    code, out, _ = run(capsys, *V2, "replay", paid, "--db", url)
    assert "after 5 steps under ewallet_payment v1 -> v2" in out
    code, out, _ = run(capsys, *V2, "history", waiting, "--db", url, "--json")
    logged = json.loads(out)
    assert logged["instance"]["flow_version"] == 2
    step = logged["transitions"][-1]
    assert (step["event"], step["actor"], step["flow_version"]) == (
        "migrate_version",
        "operator",
        2,
    )
    assert step["payload"] == {"migration": "ewallet_payment:v1-v2", "by": "on-call"}
    code, out, _ = run(capsys, *V2, "verify", "--all", "--db", url, "--json")
    verified = json.loads(out)
    assert (code, verified["failed"]) == (0, 0)  # each step checked under its own version
    assert {i["instance"]: i["replay"] for i in verified["instances"]} == {
        paid: "consistent",
        waiting: "consistent",
    }


def test_migrate_without_versions_is_refused(
    capsys: pytest.CaptureFixture[str], v1_database: tuple[str, list[str]]
) -> None:
    url, _ = v1_database
    code, out, err = run(capsys, *V2, "migrate", "ewallet_payment", "--db", url)
    assert (code, out) == (2, "")
    assert "FLOW needs --from N and --to M" in err
    code, out, err = run(
        capsys, "migrate", "ewallet_payment", "--from", "2", "--to", "3", "--db", url
    )
    assert (code, out) == (2, "")
    assert "declares no migration from version 2 to 3" in err


def test_diagram_draws_the_diff_between_two_versions(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, *V2, "diagram", "ewallet_payment", "--from", "1", "--to", "2")
    assert code == 0
    assert "ewallet_payment v1 sha256:64e0bc78d165406e  ->  ewallet_payment v2" in out
    assert "+ checkout_reminded" in out
    assert "states: +1 -0; transitions: +3 -0 ~0" in out


def test_export_says_which_version_it_is(capsys: pytest.CaptureFixture[str]) -> None:
    _, newest, _ = run(capsys, *V2, "export", "ewallet_payment")
    _, first, _ = run(capsys, *V2, "export", "ewallet_payment", "--version", "1")
    assert (json.loads(newest)["version"], json.loads(first)["version"]) == (2, 1)


def test_the_audit_report_shows_the_version_of_every_step(
    v1_database: tuple[str, list[str]],
) -> None:
    url, (paid, _) = v1_database
    store = SqlStore(url)
    engine = Engine(store, flows=CATALOG, clock=ManualClock(T0 + timedelta(hours=1)))
    engine.migrate("ewallet_payment", 1, 2, by="on-call")
    lineage = CATALOG.lineage("ewallet_payment")
    instance, history = engine.get(paid), engine.history(paid)
    result = replay_instance(lineage, instance, history)
    html = audit_html(lineage, instance, history, [], result, svg="<svg></svg>")
    store.dispose()
    assert "<th>flow</th><td>ewallet_payment v2</td>" in html
    assert "after 5 steps under v1, then v2" in html
    assert html.count("<td>v1</td>") == 4
    assert html.count("<td>v2</td>") == 1
