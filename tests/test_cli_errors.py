"""The command as installed, when things are wrong: one line and a non-zero exit, never a traceback.

Read-only commands never create or migrate a database; every command turns a bad argument, a
missing driver, an unreachable database or a taken port into one line; damaged rows are reported
by ``history``, ``replay`` and ``audit`` instead of stopping them. Each runs in a subprocess.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, make_url, text

from fsm.store.schema import HEAD_REVISION, alembic_config
from fsm.store.sql import SqlStore
from tests.cli_run import CREDENTIALS, Ran, awaiting_check, engine_at, ewallet_fsm, ewallet_fsm_many

ID = "pay-1"
READ_ONLY = {
    "list": ("list",),
    "history": ("history", ID),
    "replay": ("replay", ID),
    "audit": ("audit", ID, "-o", "report.html"),
    "diagram --payment": ("diagram", "--payment", ID),
}
ON_EXISTING = {
    **READ_ONLY,
    "resolve": ("resolve", ID, "--event", "x", "--reason", "r", "--by", "b"),
    "settle-refund": (
        "settle-refund",
        ID,
        "rf-1",
        "--as",
        "refunded",
        "--reason",
        "r",
        "--by",
        "b",
    ),
}
"""Commands that use a database only as it is (``resolve`` and ``settle-refund`` write, but
never create one)."""
ON_ANY = {
    **ON_EXISTING,
    "migrate": ("migrate",),
    "reconcile": ("reconcile", "--once", "--nicepay-url", "http://127.0.0.1:9/nicepay"),
    "serve": ("serve", "--port", "0"),
    "demo": ("demo",),
}
"""Every command that opens a database."""


def run_each(commands: dict[str, tuple[str, ...]], db: str, cwd: Path) -> dict[str, Ran]:
    argvs = [(*argv, "--db", db) for argv in commands.values()]
    runs = ewallet_fsm_many(argvs, cwd=cwd, env=CREDENTIALS)
    return dict(zip(commands, runs, strict=True))


def assert_each_says(commands: dict[str, tuple[str, ...]], db: str, cwd: Path, line: str) -> None:
    """Each command, run on ``db``, fails with exactly ``line`` (after the program's name)."""
    for name, run in run_each(commands, db, cwd).items():
        assert run.assert_one_line_error() == f"ewallet-fsm: error: {line}", name


def test_read_only_commands_never_create_a_database(tmp_path: Path) -> None:
    path = tmp_path / "typo.sqlite3"
    url = f"sqlite:///{path}"
    assert_each_says(
        ON_EXISTING,
        url,
        tmp_path,
        f"no database file at {path}: give --db URL (or $EWALLET_FSM_DB), "
        f"or create one with `ewallet-fsm migrate --db {url}`",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.fixture
def older(db_url: str) -> Iterator[SqlStore]:
    """A database at the revision before the head, with one payment in it."""
    store = SqlStore(db_url)
    with store.engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0004")
        conn.execute(
            text(
                "insert into flow_instance (id, flow, state, version, currency, created_at, "
                "updated_at) values ('pay-1', 'ewallet_payment', 'checkout_requested', 0, 'IDR', "
                "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        )
    yield store
    store.dispose()


def test_read_only_commands_never_migrate(older: SqlStore, db_url: str, tmp_path: Path) -> None:
    shown = make_url(db_url).render_as_string(hide_password=True)
    assert_each_says(
        ON_EXISTING,
        db_url,
        tmp_path,
        f"{shown} is at schema revision 0004, not {HEAD_REVISION}: "
        f"upgrade it with `ewallet-fsm migrate --db {shown}`",
    )
    assert older.schema_version() == "0004"

    migrated = ewallet_fsm("migrate", "--db", db_url, "--json", cwd=tmp_path)
    assert migrated.json() == {"database": shown, "before": "0004", "after": HEAD_REVISION}
    listed = ewallet_fsm("list", "--db", db_url, "--json", cwd=tmp_path)
    assert [i["id"] for i in listed.json()["instances"]] == [ID]


def test_an_empty_database_stays_empty(db_url: str, tmp_path: Path) -> None:
    if db_url.startswith("sqlite:///"):
        Path(db_url.removeprefix("sqlite:///")).touch()
    shown = make_url(db_url).render_as_string(hide_password=True)
    assert_each_says(
        READ_ONLY,
        db_url,
        tmp_path,
        f"{shown} holds no ewallet-fsm schema: create it with `ewallet-fsm migrate --db {shown}`",
    )
    store = SqlStore(db_url)
    assert inspect(store.engine).get_table_names() == []
    store.dispose()


SOME = {name: ON_ANY[name] for name in ("list", "migrate", "serve")}
BAD_DATABASES = {
    "missing driver": (
        "postgresql+pg8000://app:s3cret@127.0.0.1/payments",
        "ewallet-fsm: error: the database driver for 'postgresql+pg8000' is not installed "
        "(no module 'pg8000'); for PostgreSQL install psycopg: pip install 'ewallet-fsm[postgres]'",
    ),
    "unreachable": (
        "postgresql://app:s3cret@127.0.0.1:9/payments",
        "ewallet-fsm: error: database postgresql://app:***@127.0.0.1:9/payments: connection failed:"
        ' connection to server at "127.0.0.1", port 9 failed: Connection refused',
    ),
    "not a URL": (
        "payments.sqlite3",
        "ewallet-fsm: error: --db is not a database URL (Could not parse SQLAlchemy URL from given "
        "URL string); use sqlite:///PATH or postgresql://USER@HOST/DB",
    ),
    "unknown dialect": (
        "postgresql+nosuchdriver://app:s3cret@127.0.0.1/payments",
        "ewallet-fsm: error: no database dialect for 'postgresql+nosuchdriver'; "
        "use sqlite:///PATH or postgresql://USER@HOST/DB",
    ),
}
"""Each kind: the URL, and the line every command answers it with."""


@pytest.mark.parametrize("kind", sorted(BAD_DATABASES))
def test_every_command_reports_a_bad_database_in_one_line(kind: str, tmp_path: Path) -> None:
    url, expected = BAD_DATABASES[kind]
    commands = ON_ANY if kind in {"missing driver", "unreachable"} else SOME
    for name, run in run_each(commands, url, tmp_path).items():
        line = run.assert_one_line_error()
        assert run.code == 2, name
        assert line.startswith(expected), (name, line)
        assert "s3cret" not in line, name


BAD_ARGUMENTS = [
    ("list", "--limit", "many"),
    ("list", "--since", "last tuesday"),
    ("history",),
    ("replay", ID, "--until", "three"),
    ("audit", ID),
    ("diagram",),
    ("diagram", "ewallet_payment", "-o", "flow.pdf"),
    ("resolve", ID, "--event", "fail_payment", "--by", "b"),
    ("resolve", ID, "--event", "fail_payment", "--reason", "   ", "--by", "b"),
    ("migrate", "--db"),
    ("reconcile", "--interval", "-1"),
    ("reconcile", "--lease", "soon"),
    ("serve", "--port", "http"),
    ("simulator", "--port", "70000"),
    ("export", "no_such_flow"),
    ("demo", "--json", "extra"),
    ("no-such-command",),
    ("-v",),
]


def test_every_bad_argument_is_one_line(tmp_path: Path) -> None:
    runs = ewallet_fsm_many(BAD_ARGUMENTS, cwd=tmp_path, env=CREDENTIALS)
    for run in runs:
        line = run.assert_one_line_error()
        assert run.code == 2, run
        assert " error: " in line, run
    assert runs[0].err == (
        "ewallet-fsm list: error: argument --limit: 'many' is not a whole number "
        "(see `ewallet-fsm list --help`)\n"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def test_a_taken_port_is_one_line(taken_port: int, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'serve.sqlite3'}"
    env = {**CREDENTIALS, "NICEPAY_MERCHANT_KEY": "simulator-key"}
    serve, simulator = ewallet_fsm_many(
        [
            ("serve", "--port", str(taken_port), "--db", db),
            ("simulator", "--port", str(taken_port)),
        ],
        cwd=tmp_path,
        env=env,
    )
    expected = (
        f"ewallet-fsm: error: cannot listen on 127.0.0.1:{taken_port}: Address already in use"
    )
    assert serve.assert_one_line_error() == expected
    assert simulator.assert_one_line_error() == expected


def test_damaged_rows_are_reported_not_crashed_on(db_url: str, tmp_path: Path) -> None:
    store, engine, clock = engine_at(db_url)
    pid = awaiting_check(engine, clock)
    limbo = awaiting_check(engine, clock, "pay-limbo")
    with store.engine.begin() as conn:
        damage = "update transition_log set payload = :p where instance_id = :i and seq = 2"
        conn.execute(text(damage), {"p": '{"tx_id": ', "i": pid})
        conn.execute(text("update flow_instance set state = 'limbo' where id = :i"), {"i": limbo})
    store.dispose()

    history, replay, audit, history_text, replay_text = ewallet_fsm_many(
        [
            ("history", pid, "--db", db_url, "--json"),
            ("replay", pid, "--db", db_url, "--json"),
            ("audit", pid, "-o", "report.html", "--db", db_url, "--json"),
            ("history", pid, "--db", db_url),
            ("replay", pid, "--db", db_url),
        ],
        cwd=tmp_path,
    )
    assert history.code == 0, history.err
    (note,) = history.json()["damaged"]
    assert note.startswith("step 2: its stored payload is not JSON")
    assert history.json()["transitions"][1]["payload"] == {}
    assert f"damaged rows (read as far as they go):\n  {note}\n" in history_text.out
    assert replay.code == 1
    # written by hand, so the chain names the edit; the damage is still named
    assert (replay.json()["verdict"], replay.json()["applied"]) == ("tampered", 5)
    assert replay.json()["chain"]["where"] == "step 2"
    assert replay.json()["damaged"] == [note]
    assert replay_text.out.splitlines()[-1] == f"damaged row at {note}"
    assert audit.code == 1
    assert (audit.json()["verdict"], audit.json()["damaged"]) == ("tampered", [note])
    report = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "Damaged row at step 2" in report
    assert '<section id="tampered"' in report

    unknown_history, unknown_replay, unknown_audit = ewallet_fsm_many(
        [
            ("history", limbo, "--db", db_url, "--json"),
            ("replay", limbo, "--db", db_url),
            ("audit", limbo, "-o", "limbo.html", "--db", db_url),
        ],
        cwd=tmp_path,
    )
    assert unknown_history.json()["damaged"] == [
        "instance: state 'limbo' is not a state of ewallet_payment"
    ]
    assert unknown_replay.code == 1
    assert unknown_replay.out.splitlines()[-1] == (
        "first divergence at the stored row: stored row is in state 'limbo', which flow "
        "ewallet_payment does not know"
    )
    assert unknown_audit.code == 1
    assert "replay tampered" in unknown_audit.out
    assert "audit chain tampered at the instance row" in unknown_audit.out
    assert "Traceback" not in unknown_audit.err + unknown_replay.err + unknown_history.err
