"""DOT text for flow diagrams: quoting, statements, styles, and the parts every diagram shares.

Everything here is a pure function of its arguments and emits in a fixed order (states and
transitions as declared, actors as the flow declares them, wallets sorted),
so one definition always gives byte-identical DOT. Every identifier and label is quoted, so no
state, event or refusal detail can break out of its string.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape

from fsm.definition import Actor, Deadline, FlowDefinition, Moves, StateKind, StateSpec

FONT = "Helvetica"
START_NODE = ":start"
"""The id of the dot that points at the initial state; a colon keeps it apart from state names."""

_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")

KIND_TEXT: Mapping[StateKind, str] = {
    StateKind.START: "start",
    StateKind.IN_PROGRESS: "in progress",
    StateKind.WAITING_CUSTOMER: "waiting on customer",
    StateKind.WAITING_PROVIDER: "waiting on provider",
    StateKind.SUCCEEDED: "settled success",
    StateKind.FAILED: "settled failure",
    StateKind.REVERSED: "reversal",
    StateKind.REVIEW: "needs a person",
}

KIND_STYLE: Mapping[StateKind, tuple[str, str]] = {
    StateKind.START: ("#dbeafe", "#1e40af"),
    StateKind.IN_PROGRESS: ("#f1f5f9", "#475569"),
    StateKind.WAITING_CUSTOMER: ("#fef3c7", "#b45309"),
    StateKind.WAITING_PROVIDER: ("#e0f2fe", "#0369a1"),
    StateKind.SUCCEEDED: ("#dcfce7", "#15803d"),
    StateKind.FAILED: ("#fee2e2", "#b91c1c"),
    StateKind.REVERSED: ("#ede9fe", "#6d28d9"),
    StateKind.REVIEW: ("#fce7f3", "#be185d"),
}
"""Fill and border colour of each kind of state."""

ACTOR_COLOR: Mapping[str, str] = {
    Actor.MERCHANT: "#0072b2",
    Actor.PROVIDER_RESPONSE: "#009e73",
    Actor.BROWSER_CALLBACK: "#e69f00",
    Actor.PROVIDER_NOTIFICATION: "#cc79a7",
    Actor.STATUS_INQUIRY: "#d55e00",
    Actor.TIMER: "#56b4e9",
    Actor.OPERATOR: "#000000",
}
"""One colour per actor the engine knows, from a palette that stays apart for colour-blind
readers; a flow's own actors are drawn in :data:`OTHER_ACTOR_COLOR`."""
OTHER_ACTOR_COLOR = "#111827"

Attrs = Mapping[str, str]


class Html(str):
    """An HTML-like Graphviz label, written between angle brackets instead of quotes.

    Only this module builds one, from fixed text it escapes itself.
    """

    __slots__ = ()


def quote(text: str) -> str:
    """``text`` as a DOT quoted string; newlines become centred line breaks."""
    clean = _CONTROL.sub("\ufffd", text.replace("\r\n", "\n").replace("\r", "\n"))
    escaped = clean.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def attr_list(values: Attrs) -> str:
    """``[key="value" ...]`` in the mapping's order."""
    return "[" + " ".join(f"{key}={_value(value)}" for key, value in values.items()) + "]"


def _value(value: str) -> str:
    return f"<{value}>" if isinstance(value, Html) else quote(value)


def node(node_id: str, values: Attrs) -> str:
    """One node statement."""
    return f"  {quote(node_id)} {attr_list(values)}"


def edge(tail: str, head: str, values: Attrs) -> str:
    """One edge statement."""
    return f"  {quote(tail)} -> {quote(head)} {attr_list(values)}"


def digraph(name: str, caption: str, body: Iterable[str]) -> str:
    """A whole graph: defaults, the caption on top, then ``body``'s statements."""
    head = [
        f"digraph {quote(name)} {{",
        "  graph " + attr_list(_GRAPH | {"label": caption}),
        "  node " + attr_list(_NODE),
        "  edge " + attr_list(_EDGE),
        node(START_NODE, {"shape": "point", "width": "0.18", "label": ""}),
    ]
    return "\n".join([*head, *body, "}"]) + "\n"


_GRAPH = {
    "rankdir": "TB",
    "labelloc": "t",
    "labeljust": "l",
    "fontname": FONT,
    "fontsize": "13",
    "nodesep": "0.35",
    "ranksep": "0.5",
    "bgcolor": "white",
    "pad": "0.3",
}
_NODE = {"shape": "box", "style": "rounded,filled", "fontname": FONT, "fontsize": "11"}
_EDGE = {"fontname": FONT, "fontsize": "9", "color": "#334155", "arrowsize": "0.7"}


def duration(delta: timedelta) -> str:
    """A compact duration: ``55s``, ``5m``, ``1h30m``, ``24h``."""
    total = delta.total_seconds()
    if total != int(total):
        return f"{total:g}s"
    hours, rest = divmod(int(total), 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (seconds, "s")) if n]
    return "".join(parts) or "0s"


def utc_text(moment: datetime) -> str:
    """An aware time in UTC to the millisecond: ``2026-11-23 07:00:01.123Z``."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%d %H:%M:%S") + f".{utc.microsecond // 1000:03d}Z"


def deadline_lines(deadline: Deadline | None) -> list[str]:
    """A state's deadline, and the per-wallet ones, as label lines."""
    if deadline is None:
        return []
    backoff = ""
    if deadline.backoff_cap is not None:
        backoff = f", doubling up to {duration(deadline.backoff_cap)}"
    lines = [f"after {duration(deadline.after)}{backoff}: {deadline.on_expiry}"]
    lines += _wallet_line(deadline.per_wallet)
    if deadline.give_up is not None:
        give_up = deadline.give_up
        lines.append(f"from age {duration(give_up.after)}: {give_up.event}")
        lines += _wallet_line(give_up.per_wallet)
    return lines


def _wallet_line(per_wallet: Mapping[str, timedelta]) -> list[str]:
    wallets = sorted(per_wallet.items())
    if not wallets:
        return []
    return [", ".join(f"{wallet} {duration(delta)}" for wallet, delta in wallets)]


def state_label(state: StateSpec) -> str:
    """Name, kind (final, settles) and deadline of a state."""
    traits = [KIND_TEXT[state.kind]]
    if state.final:
        traits.append("final")
    if state.settlement:
        traits.append("settlement")
    return "\n".join([state.name, ", ".join(traits), *deadline_lines(state.deadline)])


def state_attrs(state: StateSpec) -> dict[str, str]:
    """How a state is drawn: coloured by kind, doubled when final, bold when it settles."""
    fill, border = KIND_STYLE[state.kind]
    attrs = {"label": state_label(state), "fillcolor": fill, "color": border}
    if state.final:
        attrs["peripheries"] = "2"
    if state.settlement or state.kind in (StateKind.START, StateKind.REVIEW):
        attrs["penwidth"] = "2"
    return attrs


@dataclass(frozen=True)
class FlowEdge:
    """Every transition from one state to another on one event, merged into one arrow."""

    source: str
    event: str
    dest: str
    actors: tuple[str, ...]
    guards: tuple[str, ...]
    """Guard names; empty when some transition on this arrow is unguarded."""
    reversal: bool
    binds: tuple[str, ...]
    follow_up: bool = False
    """The merchant's step after a final outcome (it told the customer)."""

    @property
    def key(self) -> tuple[str, str, str]:
        """``(source, event, dest)``: what identifies the arrow across flow versions."""
        return self.source, self.event, self.dest


def flow_edges(flow: FlowDefinition) -> tuple[FlowEdge, ...]:
    """The steps of the flow's table as arrows, in declaration order of their first transition,
    then of their source states."""
    order = {state.name: index for index, state in enumerate(flow.states)}
    declared = {id(spec): index for index, spec in enumerate(flow.transitions)}

    def position(item: tuple[tuple[str, str, str], Moves]) -> tuple[int, int]:
        (source, _event, _dest), moves = item
        return min(declared[id(spec)] for spec in moves.specs), order[source]

    steps = sorted(flow.table.steps.items(), key=position)
    return tuple(_edge(flow, key, moves) for key, moves in steps)


def _edge(flow: FlowDefinition, key: tuple[str, str, str], moves: Moves) -> FlowEdge:
    specs = moves.specs
    unguarded = any(spec.guard is None for spec in specs)
    guards = () if unguarded else tuple(dict.fromkeys(s.guard.name for s in specs if s.guard))
    return FlowEdge(
        source=key[0],
        event=key[1],
        dest=key[2],
        actors=tuple(actor for actor in flow.actors if actor in moves.actors),
        guards=guards,
        reversal=any(spec.reversal for spec in specs),
        binds=tuple(dict.fromkeys(name for spec in specs for name in spec.binds)),
        follow_up=any(spec.follow_up for spec in specs),
    )


def edge_details(flow_edge: FlowEdge) -> list[str]:
    """The lines under an arrow's event: who may fire it, its guard, what it sets."""
    lines = [", ".join(flow_edge.actors)]
    extras = [f"if {guard}" for guard in flow_edge.guards]
    if flow_edge.reversal:
        extras.append("reversal")
    if flow_edge.follow_up:
        extras.append("follow-up: no timer")
    if flow_edge.binds:
        extras.append("sets " + ", ".join(flow_edge.binds))
    if extras:
        lines.append("; ".join(extras))
    return lines


def edge_attrs(flow_edge: FlowEdge) -> dict[str, str]:
    """How an arrow of the definition is drawn: reversals dashed."""
    attrs = {"label": "\n".join([flow_edge.event, *edge_details(flow_edge)])}
    if flow_edge.reversal:
        attrs |= {"style": "dashed", "color": KIND_STYLE[StateKind.REVERSED][1]}
    return attrs


def initial_edge(flow: FlowDefinition) -> str:
    """The arrow from the start dot to the initial state."""
    return edge(START_NODE, flow.initial, {"arrowsize": "0.8"})


def kind_legend(kinds: Iterable[StateKind]) -> list[str]:
    """A legend of the colour of each kind in ``kinds`` (in declaration order), and the marks."""
    wanted = set(kinds)
    entries = [
        LegendEntry(KIND_TEXT[kind], fill=KIND_STYLE[kind][0], border=KIND_STYLE[kind][1])
        for kind in StateKind
        if kind in wanted
    ]
    entries.append(LegendEntry("final: double border", double=True))
    entries.append(LegendEntry("reversal: dashed arrow", border="#475569", dashed=True))
    return legend("legend", entries)


@dataclass(frozen=True)
class LegendEntry:
    """One sample cell of a legend."""

    text: str
    fill: str = "white"
    border: str = "#475569"
    font: str = "black"
    width: int = 1
    dashed: bool = False

    double: bool = False

    def cell(self) -> str:
        """The entry as a row of an HTML-like Graphviz table."""
        style = ' STYLE="dashed"' if self.dashed else ""
        text = f'<FONT COLOR="{escape(self.font)}">{escape(self.text)}</FONT>'
        colors = f'BGCOLOR="{escape(self.fill)}" COLOR="{escape(self.border)}"'
        if self.double:  # a cell inside a bordered table: two lines, like a final state
            inner = f'<TABLE BORDER="1" CELLSPACING="2" {colors}><TR><TD BORDER="1" {colors}>'
            return f'<TR><TD BORDER="0" CELLPADDING="0">{inner}{text}</TD></TR></TABLE></TD></TR>'
        return f'<TR><TD {colors} BORDER="{self.width}"{style}>{text}</TD></TR>'


def legend(title: str, entries: Sequence[LegendEntry]) -> list[str]:
    """One node holding a small table: the title, then one sample cell per entry."""
    rows = "".join(entry.cell() for entry in entries)
    table = (
        '<TABLE BORDER="1" COLOR="#cbd5e1" CELLBORDER="1" CELLSPACING="3" CELLPADDING="3">'
        f'<TR><TD BORDER="0"><B>{escape(title)}</B></TD></TR>{rows}</TABLE>'
    )
    look = {"shape": "plain", "style": "solid", "fontsize": "9"}
    return [node(f":legend:{title}", {**look, "label": Html(table)})]
