"""Diagrams: DOT from definitions, a payment's path from its log, two flow versions compared.

Rendering runs the real Graphviz `dot`; nothing is mocked.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.simulator.flow import NICEPAY_TRANSACTION
from fsm import Engine, ManualClock, SqlStore
from fsm.definition import Actor, StateKind, dump_flow, flow_from_dict, flow_to_dict, load_flow_file
from fsm.errors import (
    DiagramBackendUnavailable,
    RejectReason,
    TransitionError,
    UnknownDiagramFormat,
)
from fsm.flows import EWALLET_PAYMENT, FLOWS, GUARDS, PaymentEvent
from fsm.render.diagram import (
    ADDED,
    CHANGED,
    REMOVED,
    compare_to_dot,
    flow_to_dot,
    format_for,
    path_to_dot,
    render,
    write_diagram,
)
from fsm.render.flow_dot import ACTOR_COLOR, KIND_STYLE
from fsm.render.path_dot import CURRENT

ROOT = Path(__file__).resolve().parents[2]
DIAGRAMS = ROOT / "diagrams"
SVG_NS = "{http://www.w3.org/2000/svg}"
P, A = PaymentEvent, Actor
START = datetime(2026, 11, 23, 3, 0, 0, tzinfo=UTC)


def svg_texts(svg: bytes) -> set[str]:
    """Every line of text Graphviz drew; parsing also proves the SVG is well-formed."""
    root = ET.fromstring(svg)  # noqa: S314 - Graphviz output from our own DOT
    return {text.text or "" for text in root.iter(f"{SVG_NS}text")}


def node_line(dot: str, name: str) -> str:
    """The DOT statement that declares node ``name``."""
    (line,) = [ln for ln in dot.splitlines() if ln.startswith(f'  "{name}" [')]
    return line


# --- flow diagrams -------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_every_flow_renders_as_dot_svg_and_png(name: str, tmp_path: Path) -> None:
    flow = FLOWS[name]
    dot = flow_to_dot(flow)
    texts = svg_texts(render(dot, "svg"))
    assert {state.name for state in flow.states} <= texts
    assert render(dot, "png").startswith(b"\x89PNG\r\n\x1a\n")
    for suffix in (".dot", ".svg", ".png"):
        assert write_diagram(dot, tmp_path / f"{name}{suffix}").stat().st_size > 0
    assert (tmp_path / f"{name}.dot").read_text(encoding="utf-8") == dot


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_dot_is_deterministic_for_the_same_definition(name: str) -> None:
    flow = FLOWS[name]
    rebuilt = flow_from_dict(
        flow_to_dict(flow), guards=GUARDS
    )  # an equal definition, built anew from JSON
    assert flow_to_dot(flow) == flow_to_dot(flow) == flow_to_dot(rebuilt)


def test_states_are_styled_by_kind() -> None:
    fills: dict[StateKind, set[str]] = {}
    for flow in FLOWS.values():
        dot = flow_to_dot(flow)
        for state in flow.states:
            match = re.search(r'fillcolor="([^"]+)"', node_line(dot, state.name))
            assert match is not None
            fills.setdefault(state.kind, set()).add(match.group(1))
    assert set(fills) == set(StateKind)  # every kind, in_progress too, appears somewhere
    assert all(found == {KIND_STYLE[kind][0]} for kind, found in fills.items())
    assert len({KIND_STYLE[kind][0] for kind in StateKind}) == len(StateKind)


def test_final_states_are_doubled_and_reversals_dashed() -> None:
    dot = flow_to_dot(EWALLET_PAYMENT)
    assert 'peripheries="2"' in node_line(dot, "order_confirmed")
    assert "peripheries" not in node_line(dot, "paid")
    reversal = [ln for ln in dot.splitlines() if '"paid" -> "refunded"' in ln]
    assert len(reversal) == 1
    assert 'style="dashed"' in reversal[0]


def test_edges_name_their_event_and_actors() -> None:
    dot = flow_to_dot(EWALLET_PAYMENT)
    assert (
        '"checkout_requested" -> "checkout_abandoned" '
        '[label="abandon_checkout\\nmerchant, timer, operator"]'
    ) in dot
    assert "push_to_app\\nmerchant, provider_response\\nif push_wallet" in dot


def test_deadlines_appear_on_their_states_per_wallet_too() -> None:
    dot = flow_to_dot(EWALLET_PAYMENT)
    partner = node_line(dot, "redirected_to_partner")
    assert "after 5m: check_status" in partner
    assert "dana 24h, linkaja 5m, shopeepay 5m" in partner
    assert "after 15m: abandon_checkout" in node_line(dot, "checkout_requested")
    assert "after" not in node_line(dot, "order_confirmed")


def test_caption_gives_the_fingerprint() -> None:
    assert EWALLET_PAYMENT.fingerprint in flow_to_dot(EWALLET_PAYMENT).splitlines()[1]


# --- committed diagrams --------------------------------------------------------------------


DRAWN = {**FLOWS, NICEPAY_TRANSACTION.name: NICEPAY_TRANSACTION}
"""The flows diagrams/ holds: the payment flows, and the simulator's view of a transaction."""


@pytest.mark.parametrize("name", sorted(DRAWN))
def test_committed_dot_is_a_fresh_render(name: str) -> None:
    committed = DIAGRAMS / f"{name}.dot"
    assert committed.is_file(), "run scripts/render_diagrams.py"
    assert committed.read_bytes() == flow_to_dot(DRAWN[name]).encode("utf-8"), (
        f"{committed.name} is stale: run scripts/render_diagrams.py"
    )


@pytest.mark.parametrize("name", sorted(DRAWN))
def test_committed_svg_parses_and_names_every_state(name: str) -> None:
    committed = DIAGRAMS / f"{name}.svg"
    assert committed.is_file(), "run scripts/render_diagrams.py"
    texts = svg_texts(committed.read_bytes())
    assert {state.name for state in DRAWN[name].states} <= texts


def test_diagrams_folder_holds_exactly_the_flows() -> None:
    expected = {f"{name}{suffix}" for name in DRAWN for suffix in (".dot", ".svg")}
    assert {path.name for path in DIAGRAMS.iterdir()} == expected


def test_render_script_check_passes() -> None:
    script = ROOT / "scripts" / "render_diagrams.py"
    command = [sys.executable, str(script), "--check"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    assert done.returncode == 0, done.stderr


# --- a payment's path ----------------------------------------------------------------------


_ACCEPTED = {"tx_id": "TX123", "reference_no": "ORD-1", "merchantToken": "S3CR3T"}


class Hostile:
    """A DANA payment that meets a duplicate, a forged settlement and a late notification."""

    def __init__(self, tmp_path: Path) -> None:
        self.store = SqlStore(f"sqlite:///{tmp_path / 'path.sqlite3'}")
        self.store.create_schema()
        self.clock = ManualClock(START)
        self.engine = Engine(self.store, flows=FLOWS, clock=self.clock)
        self.id = self.engine.start(
            "ewallet_payment",
            instance_id="pay-1",
            wallet="dana",
            amount=150000,
            reference_no="ORD-1",
        ).id
        self.keys = 0

    def fire(self, event: str, actor: Actor, key: str | None = None, **payload: Any) -> None:
        self.clock.advance(timedelta(seconds=1))
        self.keys += 1
        with contextlib.suppress(TransitionError):  # a refusal is recorded; the path shows it
            self.engine.fire(
                self.id, event, actor=actor, idempotency_key=key or f"k{self.keys}", payload=payload
            )

    def play(self) -> None:
        self.fire(P.SEND_REGISTRATION, A.MERCHANT)
        self.fire(P.ACCEPT_REGISTRATION, A.PROVIDER_RESPONSE, **_ACCEPTED)
        self.fire(P.REQUEST_PAYMENT, A.MERCHANT)
        self.fire(P.REDIRECT_CUSTOMER, A.MERCHANT)
        self.fire(P.RECEIVE_NOTIFICATION, A.PROVIDER_NOTIFICATION, key="notify-1")
        self.fire(P.RECEIVE_NOTIFICATION, A.PROVIDER_NOTIFICATION, key="notify-1")  # duplicate
        self.fire(P.CONFIRM_PAYMENT, A.PROVIDER_NOTIFICATION)  # forged settlement
        self.fire(P.CHECK_STATUS, A.MERCHANT)
        self.fire(P.CHECK_STATUS, A.TIMER)  # the same arrow, twice
        self.fire(P.CHECK_STATUS, A.TIMER)
        self.fire(P.CONFIRM_PAYMENT, A.STATUS_INQUIRY, status="0")
        self.fire(P.CONFIRM_ORDER, A.MERCHANT)
        self.fire(P.RECEIVE_NOTIFICATION, A.PROVIDER_NOTIFICATION, key="notify-late")  # stale

    def dot(self) -> str:
        instance = self.store.get(self.id)
        history, refused = self.store.history(self.id), self.store.rejections(self.id)
        return path_to_dot(EWALLET_PAYMENT, instance, history, refused)


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[Hostile]:
    payment = Hostile(tmp_path)
    payment.play()
    yield payment
    payment.store.dispose()


def edge_lines(dot: str, tail: str, head: str) -> list[str]:
    return [ln for ln in dot.splitlines() if ln.startswith(f'  "{tail}" -> "{head}" ')]


def test_path_numbers_its_steps_with_times_and_colours_them_by_actor(hostile: Hostile) -> None:
    dot = hostile.dot()
    (first,) = edge_lines(dot, "checkout_requested", "registration_sent")
    assert "#1 send_registration\\nmerchant\\n2026-11-23 03:00:01.000Z" in first
    assert f'color="{ACTOR_COLOR[A.MERCHANT]}"' in first
    (settle,) = edge_lines(dot, "status_check_requested", "paid")
    assert f'color="{ACTOR_COLOR[A.STATUS_INQUIRY]}"' in settle
    assert "#9 confirm_payment" in settle


def test_a_repeated_edge_shows_its_count(hostile: Hostile) -> None:
    loops = edge_lines(hostile.dot(), "status_check_requested", "status_check_requested")
    (timer,) = [ln for ln in loops if "x2" in ln]
    assert "#7, #8 check_status x2\\ntimer" in timer
    assert "#7 2026-11-23 03:00:09.000Z\\n#8 2026-11-23 03:00:10.000Z" in timer


def test_refused_events_are_notes_at_the_state_they_arrived_in(hostile: Hostile) -> None:
    dot = hostile.dot()
    notes = dict(re.findall(r'  "(:refused:\d+)" \[label="([^"]*)"', dot))
    arrived = dict(re.findall(r'  "(:refused:\d+)" -> "([^"]+)"', dot))
    by_reason = {label.split("\\n")[2].split(":")[0]: note for note, label in notes.items()}
    assert arrived[by_reason["duplicate"]] == "notification_received"
    assert arrived[by_reason["stale"]] == "order_confirmed"
    forged = [n for n, label in notes.items() if label.startswith("refused: confirm_payment")]
    assert [arrived[n] for n in forged] == ["notification_received"]
    assert "by provider_notification" in notes[forged[0]]


def test_current_state_is_highlighted_and_caption_names_references(hostile: Hostile) -> None:
    dot = hostile.dot()
    current = node_line(dot, "order_confirmed")
    assert "[current state]" in current
    assert f'color="{CURRENT}"' in current
    assert "[current state]" not in node_line(dot, "paid")
    caption = dot.splitlines()[1]
    assert EWALLET_PAYMENT.fingerprint in caption
    assert "reference_no ORD-1" in caption
    assert "tx_id TX123" in caption
    assert "S3CR3T" not in dot
    assert "notify-1" not in dot  # no payloads, no keys


def test_path_is_deterministic_and_renders(hostile: Hostile) -> None:
    dot = hostile.dot()
    assert dot == hostile.dot()
    texts = svg_texts(render(dot, "svg"))
    assert "[current state]" in texts
    assert "refused: confirm_payment" in texts


def test_hostile_text_cannot_break_out_of_its_label(hostile: Hostile) -> None:
    evil = 'x"] "injected" [shape="box'
    hostile.engine.record_refused(
        hostile.id,
        "forged\\event\n" + evil,
        actor=A.PROVIDER_NOTIFICATION,
        idempotency_key="evil",
        reason=RejectReason.INVALID_PAYLOAD,
        detail=evil,
    )
    svg = render(hostile.dot(), "svg")
    titles = {t.text for t in ET.fromstring(svg).iter(f"{SVG_NS}title")}  # noqa: S314
    assert "injected" not in titles
    assert any(evil in text for text in svg_texts(svg))


def test_a_fresh_instance_shows_only_its_current_state(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    store.create_schema()
    instance = Engine(store, flows=FLOWS).start("ewallet_payment", wallet="ovo", amount=1000)
    dot = path_to_dot(EWALLET_PAYMENT, instance, [], [])
    store.dispose()
    assert "[current state]" in node_line(dot, EWALLET_PAYMENT.initial)
    assert "#1 " not in dot
    assert ":refused:" not in dot
    assert "state checkout_requested after 0 steps; 0 refused" in dot.splitlines()[1]
    assert render(dot, "svg").startswith(b"<?xml")


def test_a_log_that_leaves_the_definition_is_still_drawn(hostile: Hostile) -> None:
    instance = hostile.store.get(hostile.id)
    history = hostile.store.history(hostile.id)
    odd = replace(history[-1], seq=99, source=instance.state, dest="archived", fingerprint="old")
    dot = path_to_dot(EWALLET_PAYMENT, replace(instance, state="archived"), [*history, odd])
    assert "archived\\n(not in this definition)\\n[current state]" in node_line(dot, "archived")
    (step,) = edge_lines(dot, instance.state, "archived")
    assert "(not in this definition)" in step
    assert "steps applied under another definition: old" in dot.splitlines()[1]
    assert "archived" in svg_texts(render(dot, "svg"))


# --- two versions of a flow ----------------------------------------------------------------


def older_ewallet() -> dict[str, Any]:
    """ewallet_payment as it might have been: no payment_pending, an on_hold state instead."""
    data = flow_to_dict(EWALLET_PAYMENT)
    data["states"] = [s for s in data["states"] if s["name"] != "payment_pending"]
    data["transitions"] = [t for t in data["transitions"] if t["dest"] != "payment_pending"]
    for spec in data["transitions"]:
        spec["sources"] = [s for s in spec["sources"] if s != "payment_pending"]
        if spec["event"] == "request_payment":
            spec["actors"] = ["merchant", "operator"]
    data["states"].append(
        {
            "name": "on_hold",
            "kind": "waiting_provider",
            "deadline": {"after_seconds": 600, "on_expiry": "check_status"},
        }
    )
    hold = {"sources": ["status_check_requested"], "dest": "on_hold", "actors": ["operator"]}
    back = {"sources": ["on_hold"], "dest": "status_check_requested", "actors": ["timer"]}
    data["transitions"] += [{"event": "hold", **hold}, {"event": "check_status", **back}]
    return data


def test_comparison_marks_added_removed_and_changed(tmp_path: Path) -> None:
    old_file = tmp_path / "old.json"
    old_file.write_text(dump_flow(flow_from_dict(older_ewallet(), guards=GUARDS)), encoding="utf-8")
    dot = compare_to_dot(load_flow_file(old_file, guards=GUARDS), EWALLET_PAYMENT)
    added = node_line(dot, "payment_pending")
    assert 'label="+ payment_pending' in added
    assert f'color="{ADDED}"' in added
    removed = node_line(dot, "on_hold")
    assert 'label="- on_hold' in removed
    assert "dashed" in removed
    assert REMOVED in removed
    (hold,) = edge_lines(dot, "status_check_requested", "on_hold")
    assert 'label="- hold' in hold
    assert 'style="dashed"' in hold
    (report,) = edge_lines(dot, "status_check_requested", "payment_pending")
    assert 'label="+ report_pending' in report
    assert ADDED in report
    (changed,) = edge_lines(dot, "registered", "payment_requested")
    assert "was: merchant, operator" in changed
    assert CHANGED in changed
    assert "states: +1 -1" in dot.splitlines()[1]
    assert {"payment_pending", "on_hold"} <= {
        t.lstrip("+- ") for t in svg_texts(render(dot, "svg"))
    }


def test_comparing_a_flow_with_itself_marks_nothing() -> None:
    dot = compare_to_dot(EWALLET_PAYMENT, EWALLET_PAYMENT)
    assert "states: +0 -0; transitions: +0 -0 ~0" in dot
    drawn = [line for line in dot.splitlines() if ":legend:" not in line]
    assert not [line for line in drawn if ADDED in line or REMOVED in line or CHANGED in line]


# --- formats and backends ------------------------------------------------------------------


def test_format_comes_from_the_suffix() -> None:
    assert [format_for(f"a{s}") for s in (".dot", ".SVG", ".png")] == ["dot", "svg", "png"]
    for bad in ("a.pdf", "a", "a.svg.txt"):
        with pytest.raises(UnknownDiagramFormat, match=r"\.dot, \.svg, \.png"):
            format_for(bad)


def test_missing_dot_binary_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a real PATH with no Graphviz on it
    dot = flow_to_dot(EWALLET_PAYMENT)
    with pytest.raises(DiagramBackendUnavailable, match="install Graphviz"):
        render(dot, "svg")
    assert render(dot, "dot") == dot.encode()  # DOT text needs no binary
    assert write_diagram(dot, tmp_path / "flow.dot").read_text(encoding="utf-8") == dot


def test_missing_graphviz_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "graphviz", None)  # makes `import graphviz` fail
    with pytest.raises(DiagramBackendUnavailable, match="pip install"):
        render(flow_to_dot(EWALLET_PAYMENT), "png")


def test_fsm_imports_and_draws_without_graphviz() -> None:
    code = (
        "import sys; sys.modules['graphviz'] = None\n"
        "import fsm, fsm.render.diagram, fsm.render.audit\n"
        "from fsm.flows import FLOWS\n"
        "assert all(fsm.render.diagram.flow_to_dot(f) for f in FLOWS.values())\n"
        "del sys.modules['graphviz']\n"
        "import fsm.render.diagram\n"
        "fsm.render.diagram.flow_to_dot(FLOWS['ewallet_payment'])\n"
        "assert 'graphviz' not in sys.modules, 'imported eagerly'\n"
    )
    command = [sys.executable, "-c", code]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    assert done.returncode == 0, done.stderr
