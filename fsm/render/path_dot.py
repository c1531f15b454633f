"""One instance's real path drawn over its flow, from the stored log and the stored refusals.

The flow is drawn faded; the arrows the instance took are drawn in the colour of the actor that
fired them, numbered with their steps and times (a repeated arrow says how often). Each refused
event (duplicate, stale, wrong actor, ...) is a note pointing at the state it arrived in, with its
reason, and the current state is outlined. Only the instance's id, reference fields and refunds
appear (the refunded total, and who asked for each refund, how much and why); other payload
fields, keys and mandates stay out of the picture.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Iterable, Sequence

from fsm.definition import MIGRATE_EVENT, FlowDefinition, FlowVersions, StateSpec
from fsm.errors import RejectReason
from fsm.model import Instance, RejectedEvent, TransitionRecord
from fsm.refunds import RefundRequestStep, refund_requests, refunded_total
from fsm.render.flow_dot import (
    ACTOR_COLOR,
    OTHER_ACTOR_COLOR,
    START_NODE,
    FlowEdge,
    LegendEntry,
    digraph,
    edge,
    flow_edges,
    initial_edge,
    legend,
    node,
    state_attrs,
    utc_text,
)

CURRENT = "#2563eb"
MAX_TIMES = 4
"""Occurrences listed on one arrow or note; the rest are counted."""
MAX_REASON = 60
"""Characters of a refund's reason shown in the caption; the audit report shows it whole."""

_FADED_STATE = {"fillcolor": "#f8fafc", "color": "#cbd5e1", "fontcolor": "#94a3b8"}
_FADED_EDGE = {"color": "#cbd5e1", "fontcolor": "#94a3b8"}
_REASON_STYLE = {
    RejectReason.DUPLICATE: ("#fef9c3", "#a16207"),
    RejectReason.STALE: ("#f1f5f9", "#475569"),
}
_REFUSED_STYLE = ("#fee2e2", "#b91c1c")

StepKey = tuple[str, str, str, str]
RefusalKey = tuple[str, str, str, RejectReason, str]


def path_to_dot(
    flow: FlowDefinition | FlowVersions,
    instance: Instance,
    history: Sequence[TransitionRecord],
    rejections: Sequence[RejectedEvent] = (),
) -> str:
    """The flow with ``instance``'s path from its log, its refused events and its current state.

    The flow drawn is the version the instance is pinned to; each step is checked against the
    version it ran under, and a migration step against the declared migration.

    Args:
        flow: the instance's flow: every released version, or the one definition it runs on.
        instance: the stored instance (its id, state and reference fields label the diagram).
        history: its applied transitions in log order (``SqlStore.history``).
        rejections: its refused events in arrival order (``SqlStore.rejections``).

    Returns:
        DOT source; identical inputs give identical text.
    """
    lineage = FlowVersions.of(flow)
    flow = lineage.versions.get(instance.flow_version, lineage.latest)
    steps = _group(history)
    visited = (
        {flow.initial, instance.state} | {r.source for r in history} | {r.dest for r in history}
    )
    body = [initial_edge(flow)]
    body += [node(s.name, _state_attrs(s, s.name in visited, instance.state)) for s in flow.states]
    body += [
        node(name, _foreign_attrs(name, instance.state))
        for name in _foreign(flow, instance, history, rejections)
    ]
    taken = {key[:3] for key in steps}
    body += [edge(e.source, e.dest, _faded(e)) for e in flow_edges(flow) if e.key not in taken]
    body += [
        _step_edge(key, records, all(_declared(lineage, r) for r in records))
        for key, records in steps.items()
    ]
    body += _refusal_notes(rejections)
    body += legend("actors", [_actor_entry(actor) for actor in _actors(flow, history, rejections)])
    caption = _caption(lineage, flow, instance, history, rejections)
    return digraph(f"{flow.name} {instance.id}", caption, body)


def _declared(lineage: FlowVersions, record: TransitionRecord) -> bool:
    """Whether the version ``record`` ran under declares its step (a migration: its map)."""
    if record.event == MIGRATE_EVENT:
        migration = lineage.migrations.get(record.flow_version - 1)
        return migration is not None and migration.target(record.source) == record.dest
    ran = lineage.versions.get(record.flow_version)
    return ran is not None and (record.source, record.event, record.dest) in ran.table.steps


def _group(history: Iterable[TransitionRecord]) -> dict[StepKey, list[TransitionRecord]]:
    steps: dict[StepKey, list[TransitionRecord]] = {}
    for record in history:
        steps.setdefault((record.source, record.event, record.dest, record.actor), []).append(
            record
        )
    return steps


def _state_attrs(state: StateSpec, visited: bool, current: str) -> dict[str, str]:
    attrs = state_attrs(state) if visited else state_attrs(state) | _FADED_STATE
    if state.name == current:
        attrs |= _current(attrs["label"])
    return attrs


def _current(label: str) -> dict[str, str]:
    return {"label": label + "\n[current state]", "color": CURRENT, "penwidth": "4"}


def _foreign(
    flow: FlowDefinition,
    instance: Instance,
    history: Sequence[TransitionRecord],
    rejections: Sequence[RejectedEvent],
) -> list[str]:
    """States the log mentions that the definition does not have, in order of appearance."""
    seen = [instance.state]
    for record in history:
        seen += [record.source, record.dest]
    seen += [rejected.state for rejected in rejections]
    return [
        name for name in dict.fromkeys(seen) if name not in flow.state_map and name != START_NODE
    ]


def _foreign_attrs(name: str, current: str) -> dict[str, str]:
    attrs = {
        "label": f"{name}\n(not in this definition)",
        "style": "rounded,dashed",
        "color": "#b91c1c",
    }
    return attrs | _current(attrs["label"]) if name == current else attrs


def _faded(flow_edge: FlowEdge) -> dict[str, str]:
    attrs = {"label": flow_edge.event, **_FADED_EDGE}
    if flow_edge.reversal:
        attrs["style"] = "dashed"
    return attrs


def _step_edge(key: StepKey, records: list[TransitionRecord], declared: bool) -> str:
    source, event, dest, actor = key
    numbers = ", ".join(f"#{r.seq}" for r in records[:MAX_TIMES])
    count = f" x{len(records)}" if len(records) > 1 else ""
    lines = [f"{numbers} {event}{count}", str(actor)]
    if len(records) == 1:
        lines.append(utc_text(records[0].occurred_at))
    else:
        lines += [f"#{r.seq} {utc_text(r.occurred_at)}" for r in records[:MAX_TIMES]]
        lines += _more(len(records))
    if not declared:
        lines.append("(not in this definition)")
    color = ACTOR_COLOR.get(actor, OTHER_ACTOR_COLOR)
    attrs = {"label": "\n".join(lines), "color": color, "fontcolor": color, "penwidth": "2.5"}
    attrs["weight"] = "3"
    if not declared:
        attrs["style"] = "dashed"
    return edge(source, dest, attrs)


def _more(count: int) -> list[str]:
    return [f"... and {count - MAX_TIMES} more"] if count > MAX_TIMES else []


def _refusal_notes(rejections: Iterable[RejectedEvent]) -> list[str]:
    groups: dict[RefusalKey, list[RejectedEvent]] = {}
    for rejected in rejections:
        key = (rejected.state, rejected.event, rejected.actor, rejected.reason, rejected.detail)
        groups.setdefault(key, []).append(rejected)
    lines: list[str] = []
    for index, (key, events) in enumerate(groups.items(), start=1):
        note_id = f":refused:{index}"
        fill, border = _REASON_STYLE.get(key[3], _REFUSED_STYLE)
        look = {"shape": "note", "style": "filled", "fillcolor": fill, "color": border}
        lines.append(
            node(note_id, {"label": _refusal_label(key, events), **look, "fontcolor": border})
        )
        lines.append(
            edge(note_id, key[0], {"style": "dashed", "color": border, "arrowhead": "vee"})
        )
    return lines


def _refusal_label(key: RefusalKey, events: list[RejectedEvent]) -> str:
    _state, event, actor, reason, detail = key
    count = f" x{len(events)}" if len(events) > 1 else ""
    lines = [f"refused{count}: {event}", f"by {actor}"]
    lines += textwrap.wrap(f"{reason}: {detail}" if detail else str(reason), width=46)
    lines += [f"after step {e.version}, {utc_text(e.occurred_at)}" for e in events[:MAX_TIMES]]
    return "\n".join([*lines, *_more(len(events))])


def _actors(
    flow: FlowDefinition, history: Iterable[TransitionRecord], rejections: Iterable[RejectedEvent]
) -> list[str]:
    """The actors in the log: the flow's in its declared order, then any others sorted."""
    used = {record.actor for record in history} | {rejected.actor for rejected in rejections}
    declared = [actor for actor in flow.actors if actor in used]
    return declared + sorted(used - set(declared))


def _actor_entry(actor: str) -> LegendEntry:
    color = ACTOR_COLOR.get(actor, OTHER_ACTOR_COLOR)
    return LegendEntry(str(actor), border=color, font=color, width=3)


def _caption(
    lineage: FlowVersions,
    flow: FlowDefinition,
    instance: Instance,
    history: Sequence[TransitionRecord],
    rejections: Sequence[RejectedEvent],
) -> str:
    references = [f"reference_no {instance.reference_no or '-'}", f"tx_id {instance.tx_id or '-'}"]
    if instance.wallet:
        references.append(f"wallet {instance.wallet}")
    reasons = Counter(str(rejected.reason) for rejected in rejections)
    refused = ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items()))
    lines = [
        f"{instance.id}   flow {flow.name}   definition {flow.fingerprint}",
        "   ".join(references),
        f"state {instance.state} after {len(history)} steps; {len(rejections)} refused"
        + (f" ({refused})" if refused else ""),
    ]
    refunds = refund_requests(history)
    if refunds or instance.refunded_amount:
        lines.append(refunded_total(instance))
    lines += [_refund_line(r) for r in refunds[:MAX_TIMES]] + _more(len(refunds))
    versions = sorted({r.flow_version for r in history} - {flow.version})
    if versions:
        lines.append("steps under earlier versions: " + ", ".join(f"v{v}" for v in versions))
    released = {f.fingerprint for f in lineage.versions.values()}
    others = sorted({r.fingerprint for r in history} - released)
    if others:
        lines.append("steps applied under another definition: " + ", ".join(others))
    return "\n".join(lines)


def _refund_line(request: RefundRequestStep) -> str:
    reason = textwrap.shorten(request.reason, width=MAX_REASON, placeholder="...")
    return (
        f"#{request.seq} refund {request.amount} requested by {request.requested_by} "
        f"({request.actor}, request {request.request_id}): {reason}"
    )
