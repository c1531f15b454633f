"""`ewallet-fsm diagram` and `ewallet-fsm audit` on the demo's payments, and the report itself.

The report is opened in headless Chromium (Debian's `chromium`, installed by scripts/setup.sh).
Without it the browser test is skipped, unless EWALLET_FSM_REQUIRE_BROWSER=1 makes that a failure.
Its screenshot is kept under test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

from adapters.cli import main
from fsm import Actor, Engine, RejectReason, SqlStore, replay_instance
from fsm.flows import EWALLET_PAYMENT, FLOWS, PaymentEvent
from fsm.render.audit import audit_report

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
REQUIRE_BROWSER = os.environ.get("EWALLET_FSM_REQUIRE_BROWSER") == "1"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def run_cli(*argv: str) -> tuple[int, str, str]:
    """Run the command in-process; returns the exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@dataclass(frozen=True)
class Demo:
    """A database the demo ran on, and its hostile DANA payment."""

    url: str
    hostile: str


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    url = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'demo.sqlite3'}"
    _code, out, _ = run_cli("demo", "--db", url, "--json")  # its verdict is test_cli's concern
    ids = [p["id"] for p in json.loads(out)["payments"] if p["id"].endswith("-dana-hostile")]
    assert len(ids) == 1
    return Demo(url, ids[0])


# --- ewallet-fsm diagram -------------------------------------------------------------------


def test_payment_path_shows_the_duplicate_and_the_refused_notification(
    demo: Demo, tmp_path: Path
) -> None:
    target = tmp_path / "path.dot"
    code, out, _ = run_cli(
        "diagram", "--payment", demo.hostile, "--db", demo.url, "-o", str(target)
    )
    assert code == 0
    assert str(target) in out
    dot = target.read_text(encoding="utf-8")
    labels = re.findall(r'"(?::refused:\d+)" \[label="([^"]*)"', dot)
    reasons = {label.split("\\n")[2].split(":")[0] for label in labels}
    # the duplicate deliveries, and the forged notification refused for what it is
    assert {"duplicate", "unverified"} <= reasons
    attached = re.findall(r'"(?::refused:\d+)" -> "([^"]+)"', dot)
    assert len(attached) == len(labels)
    assert "[current state]" in dot
    assert "reference_no ORD-" in dot.splitlines()[1]


@pytest.mark.parametrize("suffix", [".dot", ".svg", ".png"])
def test_diagram_format_follows_the_suffix(demo: Demo, tmp_path: Path, suffix: str) -> None:
    for argv in (["ewallet_payment"], ["--payment", demo.hostile, "--db", demo.url]):
        target = tmp_path / f"out{suffix}"
        assert run_cli("diagram", *argv, "-o", str(target))[0] == 0
        data = target.read_bytes()
        starts = {".dot": b"digraph ", ".svg": b"<?xml", ".png": b"\x89PNG"}[suffix]
        assert data.startswith(starts)


def test_unknown_suffix_is_a_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "flow.pdf"
    code, _, err = run_cli("diagram", "ewallet_payment", "-o", str(target))
    assert code == 2
    assert "unknown diagram format '.pdf'; use one of: .dot, .svg, .png" in err
    assert not target.exists()


def test_diagram_without_output_prints_dot() -> None:
    code, out, _ = run_cli("diagram", "astrapay_link")
    assert code == 0
    assert out.startswith('digraph "astrapay_link" {')


@pytest.mark.parametrize(
    "argv",
    [(), ("ewallet_payment", "--payment", "x"), ("--payment", "x", "--against", "old.json")],
)
def test_diagram_needs_exactly_one_subject(argv: tuple[str, ...]) -> None:
    code, _, err = run_cli("diagram", *argv)
    assert code == 2
    assert "error:" in err


def test_flow_against_an_exported_older_version(tmp_path: Path) -> None:
    code, exported, _ = run_cli("export", "ewallet_payment")
    assert code == 0
    old = json.loads(exported)
    old["states"] = [s for s in old["states"] if s["name"] != "payment_pending"]
    old["transitions"] = [t for t in old["transitions"] if t["dest"] != "payment_pending"]
    for spec in old["transitions"]:
        spec["sources"] = [s for s in spec["sources"] if s != "payment_pending"]
    old_file = tmp_path / "old.json"
    old_file.write_text(json.dumps(old), encoding="utf-8")
    target = tmp_path / "diff.dot"
    argv = ("diagram", "ewallet_payment", "--against", str(old_file), "-o", str(target))
    assert run_cli(*argv)[0] == 0
    dot = target.read_text(encoding="utf-8")
    assert 'label="+ payment_pending' in dot
    assert 'label="+ report_pending' in dot
    assert "states: +1 -0" in dot


def test_flow_against_the_previous_release_export(tmp_path: Path) -> None:
    old_file = ROOT / "tests" / "fsm" / "data" / "ewallet_payment_previous_release.json"
    assert "nicepay_response" in old_file.read_text(encoding="utf-8")  # the names it was made with
    target = tmp_path / "diff.dot"
    argv = ("diagram", "ewallet_payment", "--against", str(old_file), "-o", str(target))
    assert run_cli(*argv, "--to", "1")[0] == 0  # the release before version 2
    assert "states: +0 -0; transitions: +0 -0 ~0" in target.read_text(encoding="utf-8")
    assert run_cli(*argv)[0] == 0  # version 2: the merchant confirms failures and expiries too
    assert "states: +2 -0" in target.read_text(encoding="utf-8")


# --- ewallet-fsm audit ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def report(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("audit") / "report.html"
    code, out, _ = run_cli("audit", demo.hostile, "--db", demo.url, "-o", str(target))
    assert code == 0, out
    assert "replay consistent" in out
    return target


class Page(HTMLParser):
    """What a reader of the page sees: cell texts per table, SVG text, and the verdict."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.svg_texts: list[str] = []
        self.verdict: str | None = None
        self.svg_nodes = 0
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._in_svg_text = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "table" and found.get("id"):
            self._table = found["id"]
            self.tables[str(self._table)] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag == "td" and self._table:
            self._cell = []
        elif tag == "text":
            self._in_svg_text = True
        elif tag == "g" and found.get("class") == "node":
            self.svg_nodes += 1
        if found.get("data-verdict"):
            self.verdict = found["data-verdict"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self._table:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag == "text":
            self._in_svg_text = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._in_svg_text:
            self.svg_texts.append(data)


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    return page


def assert_report_shows_the_hostile_payment(page: Page, html: str) -> None:
    transitions = [row for row in page.tables["transitions"] if row]
    assert [row[0] for row in transitions] == [str(n) for n in range(1, len(transitions) + 1)]
    assert transitions[0][3:5] == ["v2", "send_registration"]  # each step names its version
    assert transitions[0][1].endswith("Z")
    assert transitions[0][2].endswith("+07:00")  # Asia/Jakarta
    reasons = {row[6] for row in page.tables["refused"] if row}
    # the duplicate deliveries, and the forged notification refused for what it is
    assert {"duplicate", "unverified"} <= reasons
    assert page.verdict == "consistent"
    assert page.svg_nodes >= len(EWALLET_PAYMENT.states)
    assert "[current state]" in page.svg_texts
    assert "<svg" in html


def test_audit_report_holds_diagram_tables_and_verdict(report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    assert_report_shows_the_hostile_payment(parse(html), html)
    assert "<?xml" not in html
    assert "<!--" not in html
    assert "<script" not in html.lower()
    assert not re.search(r"\s(src|href)\s*=", html)  # self-contained: nothing to fetch


def test_audit_escapes_everything_and_hides_secrets(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'evil.sqlite3'}")
    store.create_schema()
    engine = Engine(store, flows=FLOWS)
    payment = engine.start("ewallet_payment", wallet="ovo", amount=1000, reference_no="<i>R</i>")
    engine.fire(
        payment.id,
        PaymentEvent.SEND_REGISTRATION,
        actor=Actor.MERCHANT,
        idempotency_key="k<1>",
        payload={"note": "</td><script>alert(1)</script>", "merchantToken": "S3CR3T"},
    )
    engine.record_refused(
        payment.id,
        "<img src=x onerror=alert(2)>",
        actor=Actor.PROVIDER_NOTIFICATION,
        idempotency_key='"><b>',
        reason=RejectReason.INVALID_PAYLOAD,
        detail="--><script>alert(3)</script>",
        payload={"signature": "S3CR3T", "x": "&amp;"},
    )
    instance, history = store.get(payment.id), store.history(payment.id)
    refused = store.rejections(payment.id)
    result = replay_instance(EWALLET_PAYMENT, instance, history)
    html = audit_report(EWALLET_PAYMENT, instance, history, refused, result)
    store.dispose()
    assert "<script" not in html
    assert "<img" not in html
    assert "<i>R</i>" not in html
    assert "S3CR3T" not in html
    assert "&lt;/td&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html
    page = parse(html)
    assert page.tables["refused"][1][3] == "<img src=x onerror=alert(2)>"
    assert "[redacted]" in page.tables["refused"][1][-1]


# --- in a real browser ---------------------------------------------------------------------


def chromium_or_skip() -> str:
    binary = shutil.which("chromium")
    if binary is None:
        message = "chromium is not installed (scripts/setup.sh installs it)"
        if REQUIRE_BROWSER:
            pytest.fail(message + "; EWALLET_FSM_REQUIRE_BROWSER=1 requires it")
        pytest.skip(message)
    return binary


@pytest.fixture
def chromium(tmp_path: Path) -> list[str]:
    profile = tmp_path / "chromium-profile"
    return [chromium_or_skip(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]


def run_browser(command: list[str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)  # noqa: S603
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_report_renders_in_headless_chromium(report: Path, chromium: list[str]) -> None:
    url = report.resolve().as_uri()
    dom = run_browser([*chromium, "--dump-dom", url]).stdout
    assert_report_shows_the_hostile_payment(parse(dom), dom)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "audit-report.png"
    shot.unlink(missing_ok=True)
    run_browser([*chromium, f"--screenshot={shot}", "--window-size=1400,2000", url])
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 50_000  # a blank page is a few kilobytes; the diagram is far more
