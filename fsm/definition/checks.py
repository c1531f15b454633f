"""The checks a flow definition must pass; each problem names the state, event or actor at fault.

They run in two rounds. :func:`naming_problems` needs only the declared parts; once the names hold,
the flow is compiled into its :class:`~fsm.definition.table.DecisionTable`, and
:func:`graph_problems` reads that table and the parts' graph.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Protocol

from fsm.definition.spec import BINDABLE_FIELDS, Actor, Deadline, StateSpec, TransitionSpec
from fsm.definition.table import DecisionTable

MAX_ACTOR_LENGTH = 32
"""The longest actor name the log can store."""


class FlowParts(Protocol):
    """What the checks read of a flow definition."""

    @property
    def states(self) -> tuple[StateSpec, ...]: ...
    @property
    def initial(self) -> str: ...
    @property
    def transitions(self) -> tuple[TransitionSpec, ...]: ...
    @property
    def actors(self) -> tuple[str, ...]: ...
    @property
    def wallets(self) -> tuple[str, ...]: ...
    @property
    def settled_by(self) -> frozenset[str]: ...


def naming_problems(flow: FlowParts) -> list[str]:
    """Repeated or unknown names of states and actors; the graph checks need none of these."""
    names = [state.name for state in flow.states]
    problems = [f"state {name!r} is declared {count} times" for name, count in _repeats(names)]
    problems += [
        f"actor {name!r} is declared {count} times" for name, count in _repeats(list(flow.actors))
    ]
    problems += list(_unknown_names(flow))
    problems += list(_actors(flow))
    return problems


def graph_problems(flow: FlowParts, table: DecisionTable) -> list[str]:
    """Every problem of a flow whose names hold, read from its compiled ``table``."""
    graph, problems = _Graph(flow, table), []
    for check in (
        _deadlines,
        _reachability,
        _ways_out,
        _final_exits,
        _follow_ups,
        _ambiguous_events,
        _settlements,
        _bindings,
    ):
        problems += list(check(flow, graph))
    return problems


class _Graph:
    """The flow's states by name, its table, and which states each state leads to."""

    def __init__(self, flow: FlowParts, table: DecisionTable) -> None:
        self.table = table
        self.states = {state.name: state for state in flow.states}
        self.successors: dict[str, set[str]] = {state.name: set() for state in flow.states}
        for (source, _event), moves in table.moves.items():
            self.successors[source].update(spec.dest for spec in moves.specs)
        self.finals = {state.name for state in flow.states if state.final}


def _repeats(names: list[str]) -> list[tuple[str, int]]:
    return [(name, count) for name, count in Counter(names).items() if count > 1]


def _unknown_names(flow: FlowParts) -> Iterator[str]:
    known = {state.name for state in flow.states}
    if flow.initial not in known:
        yield f"initial state {flow.initial!r} is not a declared state"
    for number, spec in enumerate(flow.transitions, start=1):
        where = f"transition #{number} ({spec.event!r})"
        if not spec.sources:
            yield f"{where} has no source state"
        if not spec.actors:
            yield f"{where} names no actor allowed to fire it"
        for source in sorted(spec.sources - known):
            yield f"{where} leaves unknown state {source!r}"
        if spec.dest not in known:
            yield f"{where} enters unknown state {spec.dest!r}"
        for actor in sorted(spec.actors - set(flow.actors)):
            yield f"{where} names actor {actor!r}, which the flow does not declare"


def _actors(flow: FlowParts) -> Iterator[str]:
    for actor in flow.actors:
        if not 0 < len(actor) <= MAX_ACTOR_LENGTH:
            yield f"actor name {actor!r} is not 1 to {MAX_ACTOR_LENGTH} characters"
    settles = any(state.settlement for state in flow.states)  # else settled_by says nothing
    for actor in sorted(flow.settled_by - set(flow.actors)) if settles else ():
        yield f"settled_by names actor {actor!r}, which the flow does not declare"
    used = set().union(*(spec.actors for spec in flow.transitions))
    for actor in flow.actors:
        if actor not in used:
            yield f"actor {actor!r} is declared, but no transition names it"


def _deadlines(flow: FlowParts, graph: _Graph) -> Iterator[str]:
    for state in flow.states:
        deadline = state.deadline
        if state.final:
            if deadline is not None:
                yield f"final state {state.name!r} declares a deadline"
            continue
        if deadline is None:
            yield f"non-final state {state.name!r} has no deadline"
            continue
        where = f"deadline of state {state.name!r}"
        yield from _timed_event(graph, state.name, deadline.on_expiry, where)
        yield from _wallet_times(flow, where, deadline.after, deadline.per_wallet)
        yield from _backoff(deadline, where)
        if deadline.give_up is not None:
            give_up = deadline.give_up
            yield from _timed_event(graph, state.name, give_up.event, f"{where} gives up and")
            yield from _wallet_times(
                flow, f"{where} gives up at an age", give_up.after, give_up.per_wallet
            )


def _timed_event(graph: _Graph, state: str, event: str, where: str) -> Iterator[str]:
    candidates = graph.table.candidates(state, event)
    if not any(Actor.TIMER in spec.actors for spec in candidates):
        yield f"{where} fires {event!r}, which the timer may not fire from there"


def _wallet_times(
    flow: FlowParts, where: str, after: timedelta, per_wallet: Mapping[str, timedelta]
) -> Iterator[str]:
    unknown = sorted(set(per_wallet) - set(flow.wallets))
    if flow.wallets and unknown:
        yield f"{where} names unknown wallets {unknown}"
    if min((after, *per_wallet.values())).total_seconds() <= 0:
        yield f"{where} is not positive"


def _backoff(deadline: Deadline, where: str) -> Iterator[str]:
    cap = deadline.backoff_cap
    if cap is not None and cap < max((deadline.after, *deadline.per_wallet.values())):
        yield f"{where} backs off to a cap shorter than its first wait"


def _reachable(graph: _Graph, start: str) -> set[str]:
    seen, queue = {start}, deque([start])
    while queue:
        for nxt in graph.successors[queue.popleft()] - seen:
            seen.add(nxt)
            queue.append(nxt)
    return seen


def _reachability(flow: FlowParts, graph: _Graph) -> Iterator[str]:
    reached = _reachable(graph, flow.initial)
    for state in flow.states:
        if state.name in reached:
            continue
        if state.final:
            yield f"final state {state.name!r} cannot be reached from {flow.initial!r}"
        else:
            yield f"state {state.name!r} is unreachable from {flow.initial!r}"
    if flow.initial in graph.finals:
        yield f"initial state {flow.initial!r} is final"


def _ways_out(flow: FlowParts, graph: _Graph) -> Iterator[str]:
    for state in flow.states:
        if state.final:
            continue
        if not graph.successors[state.name] - {state.name}:
            yield f"non-final state {state.name!r} has no way out"
        elif not _reachable(graph, state.name) & graph.finals:
            yield f"non-final state {state.name!r} cannot reach any final state"


def _final_exits(flow: FlowParts, graph: _Graph) -> Iterator[str]:
    for spec in flow.transitions:
        # A self-loop (a refund requested of a settled payment) records a step and leaves
        # nothing: the state stays final, so it is no exit.
        for source in sorted(spec.sources & graph.finals - {spec.dest}):
            if not (spec.reversal or spec.follow_up):
                yield (
                    f"final state {source!r} has exit {spec.event!r} to {spec.dest!r}, "
                    "which is not a declared reversal or follow-up"
                )
        if spec.reversal and not all(graph.states[s].kind.settled for s in spec.sources):
            yield f"reversal {spec.event!r} leaves a state that is not settled"


def _follow_ups(flow: FlowParts, graph: _Graph) -> Iterator[str]:
    for spec in (spec for spec in flow.transitions if spec.follow_up):
        dest = graph.states[spec.dest]
        where = f"follow-up {spec.event!r}"
        if spec.reversal:
            yield f"{where} is declared a reversal too: a follow-up moves no money"
        if Actor.TIMER in spec.actors:
            yield f"{where} may be fired by the timer: only someone who took the step records it"
        if not dest.final or dest.settlement:
            yield f"{where} enters {dest.name!r}, which is not a final, non-settling state"
        for source in sorted(spec.sources):
            state = graph.states[source]
            if not state.final or state.kind != dest.kind:
                yield f"{where} leaves {source!r}, not a final state of {dest.name!r}'s outcome"


def _ambiguous_events(_flow: FlowParts, graph: _Graph) -> Iterator[str]:
    for (source, event), moves in graph.table.moves.items():
        unguarded = [spec for spec in moves.specs if spec.guard is None]
        if len(unguarded) > 1:
            dests = sorted({spec.dest for spec in unguarded})
            yield (
                f"event {event!r} has {len(unguarded)} unguarded transitions "
                f"from {source!r} to {dests}"
            )


def _settlements(flow: FlowParts, graph: _Graph) -> Iterator[str]:
    for spec in flow.transitions:
        dest = graph.states[spec.dest]
        enters = spec.sources != {spec.dest}  # a self-loop stays where it is and settles nothing
        if enters and dest.settlement and not spec.actors <= flow.settled_by:
            extra = sorted(spec.actors - flow.settled_by)
            yield f"event {spec.event!r} settles into {dest.name!r} but may be fired by {extra}"
        for source in sorted(spec.sources):
            if graph.states[source].kind.settled and not dest.kind.settled:
                yield (
                    f"event {spec.event!r} moves settled state {source!r} back to "
                    f"unsettled {dest.name!r}"
                )


def _bindings(flow: FlowParts, _graph: _Graph) -> Iterator[str]:
    for spec in flow.transitions:
        unknown = sorted(set(spec.binds) - BINDABLE_FIELDS)
        if unknown:
            yield f"event {spec.event!r} binds unknown instance fields {unknown}"
