"""Flow diagrams as Graphviz DOT, drawn from definitions and stored logs, never from a machine.

* :func:`flow_to_dot`: a definition, states styled by kind, arrows labelled with their event and
  the actors allowed to fire it, deadlines (per wallet too) on their states.
* :func:`path_to_dot`: the same flow with one instance's real path on it (see
  :mod:`fsm.render.path_dot`).
* :func:`compare_to_dot`: two versions of a flow in one diagram, what was added and removed marked.

DOT is deterministic text: the same definition gives byte-identical DOT. Turning it into SVG or PNG
needs Graphviz: :func:`render` imports the ``graphviz`` package only when called, so importing
``fsm`` never requires it, and raises :class:`~fsm.errors.DiagramBackendUnavailable` with
installation advice when the package or the ``dot`` binary is missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from fsm.definition import FlowDefinition, StateSpec
from fsm.errors import DiagramBackendUnavailable, UnknownDiagramFormat
from fsm.render.flow_dot import (
    FlowEdge,
    LegendEntry,
    digraph,
    edge,
    edge_attrs,
    edge_details,
    flow_edges,
    initial_edge,
    kind_legend,
    legend,
    node,
    state_attrs,
    state_label,
)
from fsm.render.path_dot import path_to_dot

FORMATS: Mapping[str, str] = MappingProxyType({".dot": "dot", ".svg": "svg", ".png": "png"})
"""Output formats by file suffix."""

INSTALL_DOT = (
    "the Graphviz `dot` binary is not on PATH: install Graphviz "
    "(Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz; "
    "or run scripts/setup.sh). DOT text (a .dot path) needs no binary."
)
INSTALL_PACKAGE = "the 'graphviz' Python package is missing: pip install 'graphviz>=0.20,<1'"

ADDED, REMOVED, CHANGED, UNCHANGED = "#16a34a", "#dc2626", "#ea580c", "#94a3b8"
"""Marks of a comparison; apart from the kinds' border colours."""


def flow_to_dot(flow: FlowDefinition) -> str:
    """The flow definition as DOT text.

    Args:
        flow: the definition to draw.

    Returns:
        DOT source; byte-identical for identical definitions.
    """
    body = [initial_edge(flow)]
    body += [node(state.name, state_attrs(state)) for state in flow.states]
    body += [edge(e.source, e.dest, edge_attrs(e)) for e in flow_edges(flow)]
    body += kind_legend(state.kind for state in flow.states)
    return digraph(flow.name, _flow_caption(flow), body)


def _flow_caption(flow: FlowDefinition) -> str:
    lines = [f"{flow.name} v{flow.version}   definition {flow.fingerprint}"]
    if flow.description:
        lines.append(flow.description)
    if flow.wallets:
        lines.append("wallets: " + ", ".join(flow.wallets))
    lines.append("settled only by: " + ", ".join(sorted(flow.settled_by)))
    return "\n".join(lines)


def compare_to_dot(old: FlowDefinition, new: FlowDefinition) -> str:
    """One diagram of ``new`` with what changed since ``old`` marked.

    Added states and arrows are green and bold, removed ones red and dashed, and those whose
    kind, deadline, actors or guard changed are orange with what they were.

    Args:
        old: the earlier version, e.g. loaded with :func:`fsm.definition.loading.load_flow_file`.
        new: the current version.

    Returns:
        DOT source.
    """
    old_states, new_states = old.state_map, new.state_map
    body = [initial_edge(new)]
    body += [_compared_state(state, old_states.get(state.name)) for state in new.states]
    body += [_removed_state(s) for s in old.states if s.name not in new_states]
    old_edges = {e.key: e for e in flow_edges(old)}
    new_edges = flow_edges(new)
    body += [_compared_edge(e, old_edges.get(e.key)) for e in new_edges]
    kept = {e.key for e in new_edges}
    body += [_removed_edge(e) for e in old_edges.values() if e.key not in kept]
    body += _change_legend()
    caption = _compare_caption(old, new, old_edges, new_edges)
    return digraph(f"{old.name} -> {new.name}", caption, body)


def _compared_state(state: StateSpec, before: StateSpec | None) -> str:
    attrs = state_attrs(state)
    if before is None:
        return node(state.name, attrs | _marked("+ ", attrs["label"], ADDED))
    was = state_label(before)
    if was == attrs["label"]:
        return node(state.name, attrs)
    old_lines = was.split("\n")[1:]
    label = attrs["label"] + "\nwas: " + "; ".join(old_lines)
    return node(state.name, attrs | _marked("~ ", label, CHANGED))


def _removed_state(state: StateSpec) -> str:
    attrs = state_attrs(state) | _marked("- ", state_label(state), REMOVED)
    return node(state.name, attrs | {"style": "rounded,filled,dashed", "fillcolor": "#f8fafc"})


def _marked(prefix: str, label: str, color: str) -> dict[str, str]:
    return {"label": prefix + label, "color": color, "fontcolor": color, "penwidth": "3"}


def _compared_edge(flow_edge: FlowEdge, before: FlowEdge | None) -> str:
    attrs = edge_attrs(flow_edge)
    if before is None:
        attrs |= _marked("+ ", attrs["label"], ADDED)
    elif before != flow_edge:
        was = "was: " + "; ".join(edge_details(before))
        attrs |= _marked("~ ", attrs["label"] + "\n" + was, CHANGED)
    else:
        attrs |= {"color": UNCHANGED, "fontcolor": "#475569"}
    return edge(flow_edge.source, flow_edge.dest, attrs)


def _removed_edge(flow_edge: FlowEdge) -> str:
    attrs = edge_attrs(flow_edge) | _marked("- ", edge_attrs(flow_edge)["label"], REMOVED)
    return edge(flow_edge.source, flow_edge.dest, attrs | {"style": "dashed"})


def _change_legend() -> list[str]:
    return legend(
        "changes",
        [
            LegendEntry("+ added", border=ADDED, font=ADDED, width=3),
            LegendEntry("- removed", border=REMOVED, font=REMOVED, width=3, dashed=True),
            LegendEntry("~ changed", border=CHANGED, font=CHANGED, width=3),
        ],
    )


def _compare_caption(
    old: FlowDefinition,
    new: FlowDefinition,
    old_edges: Mapping[tuple[str, str, str], FlowEdge],
    new_edges: tuple[FlowEdge, ...],
) -> str:
    added_states = sum(1 for s in new.states if s.name not in old.state_map)
    removed_states = sum(1 for s in old.states if s.name not in new.state_map)
    new_keys = {e.key for e in new_edges}
    added = sum(1 for e in new_edges if e.key not in old_edges)
    removed = sum(1 for key in old_edges if key not in new_keys)
    changed = sum(1 for e in new_edges if e.key in old_edges and old_edges[e.key] != e)
    return "\n".join(
        [
            f"{old.name} v{old.version} {old.fingerprint}  ->  "
            f"{new.name} v{new.version} {new.fingerprint}",
            f"states: +{added_states} -{removed_states}; "
            f"transitions: +{added} -{removed} ~{changed}",
        ]
    )


def format_for(path: str | Path) -> str:
    """The output format a path's suffix asks for (``dot``, ``svg`` or ``png``).

    Raises:
        UnknownDiagramFormat: the suffix is none of ``.dot``, ``.svg``, ``.png``.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UnknownDiagramFormat(suffix, list(FORMATS))
    return FORMATS[suffix]


def render(dot: str, fmt: str) -> bytes:
    """DOT text rendered as ``fmt`` (``dot``, ``svg`` or ``png``) by Graphviz.

    Raises:
        UnknownDiagramFormat: ``fmt`` is not one of the supported formats.
        DiagramBackendUnavailable: the ``graphviz`` package or the ``dot`` binary is missing.
    """
    if fmt not in FORMATS.values():
        raise UnknownDiagramFormat(fmt, list(FORMATS))
    if fmt == "dot":
        return dot.encode("utf-8")
    try:
        import graphviz  # lazy: importing fsm never requires it
    except ImportError as exc:
        raise DiagramBackendUnavailable(INSTALL_PACKAGE) from exc
    try:
        data: bytes = graphviz.Source(dot).pipe(format=fmt, quiet=True)
    except graphviz.ExecutableNotFound as exc:
        raise DiagramBackendUnavailable(INSTALL_DOT) from exc
    return data


def write_diagram(dot: str, path: str | Path) -> Path:
    """Write DOT text to ``path`` in the format its suffix names.

    Raises:
        UnknownDiagramFormat: the suffix is none of ``.dot``, ``.svg``, ``.png``.
        DiagramBackendUnavailable: SVG or PNG was asked for and Graphviz is missing.
    """
    target = Path(path)
    target.write_bytes(render(dot, format_for(target)))
    return target


__all__ = [
    "FORMATS",
    "compare_to_dot",
    "flow_to_dot",
    "format_for",
    "path_to_dot",
    "render",
    "write_diagram",
]
