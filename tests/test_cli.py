"""The ``ewallet-fsm`` command: run in-process through ``adapters.cli.main``, and as installed."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from adapters.cli import main
from fsm import Actor, Engine, RejectReason, SqlStore
from fsm.definition import dump_flow, flow_to_dict, load_flow_file
from fsm.flows import FLOWS, GUARDS, PaymentEvent
from tests.cli_run import EXECUTABLE, ewallet_fsm

FINAL_STATES = {
    "ovo-paid": "order_confirmed",
    "ovo-expired": "expiry_confirmed",
    "dana-paid": "order_confirmed",
    "linkaja-failed": "failure_confirmed",
    "shopeepay-app-paid": "order_confirmed",
    "dana-hostile": "order_confirmed",
    "astrapay-link": "registration_confirmed",
    "astrapay-pay": "customer_updated",
    "shopeepay-partial-refund": "refunded",
    "astrapay-forged-return": "customer_updated",
    "ovo-cancel-answer-lost": "voided",
}
"""The state each demo scenario (named in its payment ids) must end in."""
HOSTILE = "dana-hostile"
PAYMENT_FIELDS = {"id", "flow", "wallet", "state", "transitions", "rejected"}


@dataclass(frozen=True)
class Run:
    """What one command did."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Cli = Callable[..., Run]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run ``ewallet-fsm ARGS...`` in this process and capture what it printed."""

    def run(*argv: str) -> Run:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.sqlite3'}"


def scenario_of(payment_id: str) -> str:
    """The scenario name in a demo payment id (``demo-<run>-<scenario>``)."""
    prefix, _run, scenario = payment_id.split("-", 2)
    assert prefix == "demo"
    return scenario


def by_scenario(payments: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {scenario_of(payment["id"]): payment for payment in payments}


@dataclass(frozen=True)
class Demo:
    """One ``demo --json`` run, shared by the tests that read its payments."""

    url: str
    code: int
    err: str
    payments: dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """The demo, run once for this module on a fresh SQLite file (it takes a few seconds)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'demo.sqlite3'}"
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["demo", "--db", url, "--json"])
    return Demo(url, code, err.getvalue(), by_scenario(json.loads(out.getvalue())["payments"]))


@pytest.fixture
def demo(demo_run: Demo) -> dict[str, dict[str, Any]]:
    """The demo's payments by scenario name."""
    return demo_run.payments


@pytest.fixture
def demo_url(demo_run: Demo) -> str:
    return demo_run.url


def exported(flow: str = "ewallet_payment") -> dict[str, Any]:
    data: dict[str, Any] = json.loads(dump_flow(FLOWS[flow]))
    return data


def write_json_file(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


# check


def test_check_lists_every_builtin_flow_as_valid(cli: Cli) -> None:
    run = cli("check")
    assert run.code == 0
    lines = run.out.splitlines()
    head = ["flow", "version", "verdict", "states", "transitions", "fingerprint", "source"]
    assert lines[0].split() == head
    for flow in FLOWS.released():  # every version of each
        name, version = flow.name, f"v{flow.version}"
        row = next(line.split() for line in lines if line.split()[:2] == [name, version])
        assert row == [
            name,
            version,
            "valid",
            str(len(flow.states)),
            str(len(flow.transitions)),
            flow.fingerprint,
            "built-in",
        ]
    assert "INVALID" not in run.out
    assert run.err == ""


def test_check_json_gives_each_flow_and_its_fingerprint(cli: Cli) -> None:
    run = cli("check", "--json")
    assert run.code == 0
    data = run.json()
    assert data["valid"] is True
    flows = {entry["flow"]: entry for entry in data["flows"]}
    assert set(flows) == {"ewallet_payment", "astrapay_link", "astrapay_payment"}
    for name, entry in flows.items():
        assert entry["valid"] is True
        assert entry["problems"] == []
        assert entry["source"] == "built-in"
        assert entry["fingerprint"] == FLOWS[name].fingerprint
        assert entry["fingerprint"].startswith("sha256:")


def _drop_transition(event: str) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        data["transitions"] = [t for t in data["transitions"] if t["event"] != event]

    return mutate


def _add_state_without_deadline(data: dict[str, Any]) -> None:
    data["states"].append({"name": "limbo", "kind": "in_progress"})
    data["transitions"] += [
        {"event": "wander", "sources": ["registered"], "dest": "limbo", "actors": ["merchant"]},
        {"event": "leave", "sources": ["limbo"], "dest": "failed", "actors": ["operator"]},
    ]


def _send_to_unknown_state(data: dict[str, Any]) -> None:
    data["transitions"][0]["dest"] = "nowhere"


def _leave_unknown_state(data: dict[str, Any]) -> None:
    data["transitions"][0]["sources"] = ["checkout_requested", "limbo"]


def _name_unknown_guard(data: dict[str, Any]) -> None:
    data["transitions"][0]["guard"] = "full_moon"


def _settle_by_notification(data: dict[str, Any]) -> None:
    confirm = next(t for t in data["transitions"] if t["event"] == "confirm_payment")
    confirm["actors"].append("provider_notification")


BROKEN = [
    pytest.param(
        _drop_transition("confirm_order"),
        [
            "final state 'order_confirmed' cannot be reached from 'checkout_requested'",
            "final state 'failure_confirmed' cannot be reached from 'checkout_requested'",
        ],
        id="final-state-unreachable",
    ),
    pytest.param(
        _drop_transition("request_payment"),
        ["state 'payment_requested' is unreachable from 'checkout_requested'"],
        id="state-unreachable",
    ),
    pytest.param(
        _add_state_without_deadline,
        ["non-final state 'limbo' has no deadline"],
        id="no-deadline",
    ),
    pytest.param(
        _send_to_unknown_state,
        ["transition #1 ('send_registration') enters unknown state 'nowhere'"],
        id="unknown-dest",
    ),
    pytest.param(
        _leave_unknown_state,
        ["transition #1 ('send_registration') leaves unknown state 'limbo'"],
        id="unknown-source",
    ),
    pytest.param(_name_unknown_guard, ["unknown guard 'full_moon'"], id="unknown-guard"),
    pytest.param(
        _settle_by_notification,
        [
            "event 'confirm_payment' settles into 'paid' but may be fired by "
            "['provider_notification']"
        ],
        id="untrusted-settlement",
    ),
]


@pytest.mark.parametrize(("mutate", "problems"), BROKEN)
def test_check_names_what_is_wrong_in_a_broken_flow_file(
    cli: Cli, tmp_path: Path, mutate: Callable[[dict[str, Any]], None], problems: list[str]
) -> None:
    export = cli("export", "ewallet_payment")
    assert export.code == 0
    data = json.loads(export.out)
    mutate(data)
    path = write_json_file(tmp_path / "broken.json", data)

    run = cli("check", str(path))
    assert run.code == 1
    row = next(line.split() for line in run.out.splitlines() if line.endswith(str(path)))
    assert row == ["ewallet_payment", "INVALID", str(path)]
    for problem in problems:
        assert f"ewallet_payment: {problem}" in run.out.splitlines()

    result = cli("check", "--json", str(path))
    assert result.code == 1
    report = result.json()
    assert report["valid"] is False
    builtins = [entry for entry in report["flows"] if entry["source"] == "built-in"]
    assert len(builtins) == len(list(FLOWS.released()))
    assert all(entry["valid"] for entry in builtins)
    (entry,) = [entry for entry in report["flows"] if entry["source"] == str(path)]
    assert entry["valid"] is False
    assert entry["flow"] == "ewallet_payment"
    for problem in problems:
        assert problem in entry["problems"]


def test_check_refuses_a_file_that_is_not_json(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "notes.json"
    path.write_text("states: [created, paid]\n", encoding="utf-8")
    run = cli("check", str(path))
    assert run.code == 1
    (message,) = [line for line in run.out.splitlines() if line.startswith("notes.json: ")]
    assert f"cannot read {path}" in message
    assert "Expecting value: line 1 column 1" in message

    report = cli("check", "--json", str(path)).json()
    (entry,) = [e for e in report["flows"] if e["source"] == str(path)]
    assert entry["valid"] is False
    assert entry["problems"] == [f"cannot read {path}: Expecting value: line 1 column 1 (char 0)"]


def test_check_refuses_a_missing_file_and_a_json_list(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    listed = write_json_file(tmp_path / "listed.json", [exported()])
    report = cli("check", "--json", str(missing), str(listed))
    assert report.code == 1
    entries = {e["source"]: e for e in report.json()["flows"]}
    assert "No such file or directory" in entries[str(missing)]["problems"][0]
    assert entries[str(listed)]["problems"] == ["the file must hold one JSON object"]


# export


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_export_round_trips(cli: Cli, tmp_path: Path, name: str) -> None:
    run = cli("export", name)
    assert run.code == 0
    assert json.loads(run.out) == flow_to_dict(FLOWS[name])
    path = tmp_path / f"{name}.json"
    path.write_text(run.out, encoding="utf-8")

    loaded = load_flow_file(path, guards=GUARDS)
    assert loaded.fingerprint == FLOWS[name].fingerprint
    assert dump_flow(loaded) == run.out

    check = cli("check", "--json", str(path))
    assert check.code == 0
    (entry,) = [e for e in check.json()["flows"] if e["source"] == str(path)]
    assert (entry["flow"], entry["valid"]) == (name, True)
    assert entry["fingerprint"] == FLOWS[name].fingerprint


def test_export_refuses_an_unknown_flow(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "no_such_flow"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'no_such_flow'" in capsys.readouterr().err


# demo, history, replay


def test_demo_ends_every_scenario_in_its_final_state(demo_run: Demo) -> None:
    payments = demo_run.payments
    assert set(payments) == set(FINAL_STATES)
    reached = {scenario: payment["state"] for scenario, payment in payments.items()}
    assert reached == FINAL_STATES
    for payment in payments.values():
        assert set(payment) >= PAYMENT_FIELDS
        assert payment["transitions"] > 0
    assert payments[HOSTILE]["rejected"] >= 3
    flows = {scenario: payment["flow"] for scenario, payment in payments.items()}
    assert flows["astrapay-link"] == "astrapay_link"
    assert flows["astrapay-pay"] == "astrapay_payment"
    wallets = {scenario: payment["wallet"] for scenario, payment in payments.items()}
    assert wallets["ovo-paid"] == "ovo"
    assert wallets["linkaja-failed"] == "linkaja"
    assert wallets["shopeepay-app-paid"] == "shopeepay"
    refunded = {scenario: payment["refunded"] for scenario, payment in payments.items()}
    assert refunded == {
        **dict.fromkeys(FINAL_STATES, "0"),
        "shopeepay-partial-refund": "50000",  # asked twice, refunded once
        "ovo-cancel-answer-lost": "150000",
    }
    assert demo_run.code == 0, "the demo reported a scenario that did not end as expected"


def test_the_demos_retried_partial_refund_was_sent_once(
    cli: Cli, demo_url: str, demo: dict[str, dict[str, Any]]
) -> None:
    payment = demo["shopeepay-partial-refund"]
    data = cli("history", payment["id"], "--db", demo_url, "--json").json()
    assert data["instance"]["refunded_amount"] == "50000"
    (request,) = data["refund_requests"]
    assert (request["amount"], request["reason"], request["requested_by"]) == (
        "50000",
        "one shirt returned",
        "demo shop",
    )
    cancels = [call for call in data["calls"] if call["call"] == "cancel"]
    assert [(c["call_key"], c["outcome"]) for c in cancels] == [
        (f"refund:{request['request_id']}", "answered")
    ]
    text = cli("history", payment["id"], "--db", demo_url).out
    assert "50000 of 150000 IDR refunded" in text
    assert "refund requests:" in text


def test_the_demos_forged_astrapay_return_bound_nothing(
    cli: Cli, demo_url: str, demo: dict[str, dict[str, Any]]
) -> None:
    history = cli("history", demo["astrapay-forged-return"]["id"], "--db", demo_url, "--json")
    data = history.json()
    tx_id = data["instance"]["tx_id"]
    returns = [s for s in data["transitions"] if s["actor"] == "browser_callback"]
    forged = {step["payload"]["tXid"] for step in returns} - {tx_id}
    assert len(forged) == 1  # the forged return, then the customer's own
    refused = [call["outcome"] for call in data["calls"] if call["tx_id"] in forged]
    assert refused == ["refused:9751"]  # NICEPAY knows no such tXid: never bound
    assert [s["actor"] for s in data["transitions"] if s["to"] == "paid"] == ["status_inquiry"]


def test_history_and_replay_agree_with_the_demo(
    cli: Cli, demo_url: str, demo: dict[str, dict[str, Any]]
) -> None:
    for scenario, payment in demo.items():
        history = cli("history", payment["id"], "--db", demo_url, "--json")
        assert history.code == 0, history.err
        data = history.json()
        flow = FLOWS[payment["flow"]]
        assert data["instance"]["id"] == payment["id"]
        assert data["instance"]["state"] == payment["state"]
        steps = data["transitions"]
        assert len(steps) == payment["transitions"] == data["instance"]["version"]
        assert [step["seq"] for step in steps] == list(range(1, len(steps) + 1))
        assert [step["from"] for step in steps] == [
            flow.initial,
            *[step["to"] for step in steps[:-1]],
        ]
        assert steps[-1]["to"] == payment["state"]
        assert all(step["fingerprint"] == flow.fingerprint for step in steps)
        assert len(data["rejected"]) == payment["rejected"]
        calls = data["calls"]
        # A link is a form the browser submits: the server itself calls NICEPAY for payments only.
        assert bool(calls) == (payment["flow"] != "astrapay_link"), scenario
        assert all(call["finished_at"] and call["outcome"] for call in calls), scenario
        if payment["flow"] == "ewallet_payment":
            assert calls[0]["call"] == "registration", scenario
            assert calls[0]["amount"] == data["instance"]["amount"], scenario

        replay = cli("replay", payment["id"], "--db", demo_url, "--json")
        assert replay.code == 0, scenario
        assert replay.json() == {
            "instance": payment["id"],
            "flow": payment["flow"],
            "verdict": "consistent",
            "state": payment["state"],
            "applied": payment["transitions"],
            "versions": [2],
            "divergence": None,
            "damaged": [],
            "chain": {
                "status": "intact",
                "seq": None,
                "where": None,
                "reason": None,
                "key_ids": ["sha256"],
                "protection": "SHA-256 hash chain (no audit key)",
                "steps": payment["transitions"],
            },
        }
        assert data["damaged"] == []


def test_the_hostile_payment_was_settled_only_by_an_inquiry(
    cli: Cli, demo_url: str, demo: dict[str, dict[str, Any]]
) -> None:
    data = cli("history", demo[HOSTILE]["id"], "--db", demo_url, "--json").json()
    reasons = [refusal["reason"] for refusal in data["rejected"]]
    assert len(reasons) >= 3
    assert set(reasons) <= {str(reason) for reason in RejectReason}
    settling = [step for step in data["transitions"] if step["to"] == "paid"]
    assert [step["actor"] for step in settling] == ["status_inquiry"]


def test_replay_until_gives_the_state_after_n_steps(
    cli: Cli, demo_url: str, demo: dict[str, dict[str, Any]]
) -> None:
    payment = demo["shopeepay-app-paid"]
    steps = cli("history", payment["id"], "--db", demo_url, "--json").json()["transitions"]
    states = [FLOWS[payment["flow"]].initial, *[step["to"] for step in steps]]
    assert len(states) > 3
    for n, state in enumerate(states):
        run = cli("replay", payment["id"], "--db", demo_url, "--until", str(n), "--json")
        assert run.code == 0
        data = run.json()
        assert (data["state"], data["applied"], data["verdict"]) == (state, n, "consistent")
    text_run = cli("replay", payment["id"], "--db", demo_url, "--until", "3")
    assert text_run.out.splitlines() == [
        f"{payment['id']}: consistent; state {states[3]} after 3 steps under ewallet_payment v2",
        f"audit chain intact, {len(steps)} steps [SHA-256 hash chain (no audit key)]",
    ]


def test_replay_at_a_time_gives_the_state_then(
    cli: Cli, demo_url: str, demo: dict[str, dict[str, Any]]
) -> None:
    payment = demo["linkaja-failed"]
    steps = cli("history", payment["id"], "--db", demo_url, "--json").json()["transitions"]
    assert len(steps) >= 3

    def at(moment: str) -> dict[str, Any]:
        run = cli("replay", payment["id"], "--db", demo_url, "--at", moment, "--json")
        assert run.code == 0, run.err
        data: dict[str, Any] = run.json()
        return data

    before = at("2000-01-01T00:00:00+07:00")
    assert (before["state"], before["applied"]) == ("checkout_requested", 0)
    assert at("2000-01-01T00:00:00Z")["state"] == "checkout_requested"
    assert at("2999-01-01T00:00:00+00:00")["state"] == payment["state"]
    third = at(steps[2]["occurred_at"])
    assert (third["state"], third["applied"]) == (steps[2]["to"], 3)


@pytest.mark.parametrize("moment", ["2026-11-23T10:00:00", "2026-11-23"])
def test_replay_refuses_a_naive_time(
    cli: Cli, demo_url: str, demo: dict[str, dict[str, Any]], moment: str
) -> None:
    run = cli("replay", demo["ovo-paid"]["id"], "--db", demo_url, "--at", moment)
    assert run.code == 2
    assert run.out == ""
    assert run.err == f"ewallet-fsm: error: --at {moment!r} has no timezone (add Z or +07:00)\n"


def test_replay_refuses_a_time_that_is_not_iso(
    cli: Cli, demo_url: str, demo: dict[str, dict[str, Any]]
) -> None:
    run = cli("replay", demo["ovo-paid"]["id"], "--db", demo_url, "--at", "yesterday")
    assert run.code == 2
    assert run.err == "ewallet-fsm: error: --at 'yesterday' is not an ISO 8601 time\n"


@pytest.mark.parametrize("command", ["history", "replay"])
def test_an_unknown_id_is_refused_clearly(cli: Cli, demo_url: str, command: str) -> None:
    run = cli(command, "demo-nope", "--db", demo_url, "--json")
    assert run.code == 2
    assert run.out == ""
    assert run.err == "ewallet-fsm: error: no flow instance 'demo-nope'\n"


def test_human_readable_history_and_replay(
    cli: Cli, demo_url: str, demo: dict[str, dict[str, Any]]
) -> None:
    hostile = demo[HOSTILE]["id"]
    history = cli("history", hostile, "--db", demo_url)
    assert history.code == 0
    out = history.out.splitlines()
    assert out[0].startswith(f"{hostile}  flow=ewallet_payment  wallet=dana  state=")
    header = next(line for line in out if line.startswith("seq"))
    assert header.split() == ["seq", "time", "(UTC)", "event", "from", "to", "actor", "key"]
    assert "refused events:" in out
    refusals_header = out[out.index("refused events:") + 1]
    for column in ("time (UTC)", "event", "in state", "actor", "reason", "detail"):
        assert column in refusals_header
    calls_title = next(line for line in out if line.startswith("NICEPAY calls"))
    header, _rule, *rows = out[out.index(calls_title) + 1 :]
    assert header.split() == ["time", "(UTC)", "call", "referenceNo", "amount", "key", "outcome"]
    made = [row.split()[1] for row in rows if row.strip()]
    assert made[0] == "registration"
    assert "inquiry" in made
    assert not any(row.split()[-1] == "OPEN" for row in rows if row.strip())

    replay = cli("replay", hostile, "--db", demo_url)
    assert replay.code == 0
    steps = demo[HOSTILE]["transitions"]
    assert replay.out == (
        f"{hostile}: consistent; state order_confirmed after {steps} steps"
        " under ewallet_payment v2\n"
        f"audit chain intact, {steps} steps [SHA-256 hash chain (no audit key)]\n"
    )

    listing = cli("list", "--db", demo_url)
    assert listing.out.splitlines()[0].split() == [
        "id",
        "flow",
        "wallet",
        "state",
        "version",
        "referenceNo",
        "created",
        "(UTC)",
    ]


def test_database_defaults_to_the_environment(
    cli: Cli, demo_url: str, demo: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EWALLET_FSM_DB", demo_url)
    run = cli("list", "--json")
    assert run.code == 0
    listed = {i["id"]: i["state"] for i in run.json()["instances"]}
    assert listed == {p["id"]: p["state"] for p in demo.values()}


def test_replay_reports_a_stored_row_that_disagrees_with_its_log(cli: Cli, sqlite_url: str) -> None:
    store = SqlStore(sqlite_url)
    store.create_schema()
    engine = Engine(store, flows=FLOWS)
    payment = engine.start("ewallet_payment", instance_id="tampered", wallet="ovo", amount=1000)
    engine.fire(
        payment.id, PaymentEvent.SEND_REGISTRATION, actor=Actor.MERCHANT, idempotency_key="k1"
    )
    with store.engine.begin() as conn:
        conn.execute(text("update flow_instance set state = 'paid' where id = 'tampered'"))
    store.dispose()

    run = cli("replay", "tampered", "--db", sqlite_url, "--json")
    assert run.code == 1
    data = run.json()
    # the edit is what the chain names; replay still says where the row and the log disagree
    assert (data["verdict"], data["state"], data["applied"]) == ("tampered", "registration_sent", 1)
    assert (data["chain"]["status"], data["chain"]["where"]) == ("tampered", "the instance row")
    assert data["divergence"]["index"] is None
    assert "stored row says 'paid' at version 1" in data["divergence"]["reason"]
    text_run = cli("replay", "tampered", "--db", sqlite_url)
    assert text_run.code == 1
    assert text_run.out.startswith(
        "tampered: tampered; state registration_sent after 1 steps under ewallet_payment v2\n"
    )
    assert "audit chain tampered at the instance row" in text_run.out
    assert "first divergence" in text_run.out


@pytest.mark.postgres
def test_demo_on_postgres(cli: Cli, postgres_schema_url: str) -> None:
    run = cli("demo", "--db", postgres_schema_url, "--json")
    payments = by_scenario(run.json()["payments"])
    assert {scenario: p["state"] for scenario, p in payments.items()} == FINAL_STATES
    assert run.code == 0, run.err
    for payment in payments.values():
        replay = cli("replay", payment["id"], "--db", postgres_schema_url, "--json").json()
        assert (replay["verdict"], replay["state"]) == ("consistent", payment["state"])
        assert replay["applied"] == payment["transitions"]
    assert payments[HOSTILE]["rejected"] >= 3


# the installed executable


def test_installed_command_checks_the_flows(tmp_path: Path) -> None:
    assert EXECUTABLE.is_file(), f"{EXECUTABLE} is not installed"
    check = ewallet_fsm("check", "--json", cwd=tmp_path)
    assert check.code == 0, check.err
    report = json.loads(check.out)
    assert report["valid"] is True
    assert {entry["flow"] for entry in report["flows"]} == set(FLOWS)


def test_installed_command_runs_the_demo_and_replays_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'installed.sqlite3'}"
    demo = ewallet_fsm("demo", "--db", url, cwd=tmp_path)
    lines = demo.out.splitlines()
    for column in ("final state", "transitions", "rejected"):
        assert column in lines[0]
    assert set(lines[1]) == {"-", " "}
    assert f"database: {url}" in lines
    replay_hint = next(line for line in lines if line.startswith("replay one:"))
    payment_id = replay_hint.split()[4]
    assert scenario_of(payment_id) in FINAL_STATES

    replay = ewallet_fsm("replay", payment_id, "--db", url, "--json", cwd=tmp_path)
    assert replay.code == 0, replay.err
    assert json.loads(replay.out)["verdict"] == "consistent"

    naive = ewallet_fsm("replay", payment_id, "--db", url, "--at", "2026-01-01T00:00", cwd=tmp_path)
    assert naive.code == 2
    assert "has no timezone" in naive.err
    assert "Traceback" not in naive.err
    assert not (tmp_path / "ewallet-fsm.sqlite3").exists(), "--db was ignored"
    assert demo.code == 0, demo.out


def test_installed_command_without_arguments_prints_usage(tmp_path: Path) -> None:
    run = ewallet_fsm(cwd=tmp_path)
    assert run.code == 2
    assert run.err.startswith("usage: ewallet-fsm")
