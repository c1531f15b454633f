"""The checks a flow definition must pass; each problem names the state or event at fault."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterator, Mapping
from datetime import timedelta

from fsm.definition.flow import BINDABLE_FIELDS, Actor, Deadline, FlowDefinition


def problems_of(flow: FlowDefinition) -> list[str]:
    """Every problem found in ``flow``; an empty list means it is valid."""
    names = [state.name for state in flow.states]
    problems = [f"state {name!r} is declared {count} times" for name, count in _repeats(names)]
    problems += list(_unknown_names(flow))
    if problems:  # graph checks would only repeat these
        return problems
    for check in (
        _deadlines,
        _reachability,
        _ways_out,
        _final_exits,
        _ambiguous_events,
        _settlements,
        _bindings,
    ):
        problems += list(check(flow))
    return problems


def _repeats(names: list[str]) -> list[tuple[str, int]]:
    return [(name, count) for name, count in Counter(names).items() if count > 1]


def _unknown_names(flow: FlowDefinition) -> Iterator[str]:
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


def _deadlines(flow: FlowDefinition) -> Iterator[str]:
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
        yield from _timed_event(flow, state.name, deadline.on_expiry, where)
        yield from _wallet_times(flow, where, deadline.after, deadline.per_wallet)
        yield from _backoff(deadline, where)
        if deadline.give_up is not None:
            give_up = deadline.give_up
            yield from _timed_event(flow, state.name, give_up.event, f"{where} gives up and")
            yield from _wallet_times(
                flow, f"{where} gives up at an age", give_up.after, give_up.per_wallet
            )


def _timed_event(flow: FlowDefinition, state: str, event: str, where: str) -> Iterator[str]:
    timed = [spec for spec in flow.candidates(state, event) if Actor.TIMER in spec.actors]
    if not timed:
        yield f"{where} fires {event!r}, which the timer may not fire from there"


def _wallet_times(
    flow: FlowDefinition, where: str, after: timedelta, per_wallet: Mapping[str, timedelta]
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


def _successors(flow: FlowDefinition) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {state.name: set() for state in flow.states}
    for spec in flow.transitions:
        for source in spec.sources:
            graph[source].add(spec.dest)
    return graph


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, queue = {start}, deque([start])
    while queue:
        for nxt in graph[queue.popleft()] - seen:
            seen.add(nxt)
            queue.append(nxt)
    return seen


def _reachability(flow: FlowDefinition) -> Iterator[str]:
    reached = _reachable(_successors(flow), flow.initial)
    for state in flow.states:
        if state.name in reached:
            continue
        if state.final:
            yield f"final state {state.name!r} cannot be reached from {flow.initial!r}"
        else:
            yield f"state {state.name!r} is unreachable from {flow.initial!r}"
    if flow.state(flow.initial).final:
        yield f"initial state {flow.initial!r} is final"


def _ways_out(flow: FlowDefinition) -> Iterator[str]:
    graph = _successors(flow)
    finals = {state.name for state in flow.states if state.final}
    for state in flow.states:
        if state.final:
            continue
        if not graph[state.name] - {state.name}:
            yield f"non-final state {state.name!r} has no way out"
        elif not _reachable(graph, state.name) & finals:
            yield f"non-final state {state.name!r} cannot reach any final state"


def _final_exits(flow: FlowDefinition) -> Iterator[str]:
    finals = {state.name for state in flow.states if state.final}
    for spec in flow.transitions:
        # A self-loop (a refund requested of a settled payment) records a step and leaves
        # nothing: the state stays final, so it is no exit.
        for source in sorted(spec.sources & finals - {spec.dest}):
            if not spec.reversal:
                yield (
                    f"final state {source!r} has exit {spec.event!r} to {spec.dest!r}, "
                    "which is not a declared reversal"
                )
        if spec.reversal and not all(flow.state(s).kind.settled for s in spec.sources):
            yield f"reversal {spec.event!r} leaves a state that is not settled"


def _ambiguous_events(flow: FlowDefinition) -> Iterator[str]:
    for (source, event), specs in flow.index.items():
        unguarded = [spec for spec in specs if spec.guard is None]
        if len(unguarded) > 1:
            dests = sorted({spec.dest for spec in unguarded})
            yield (
                f"event {event!r} has {len(unguarded)} unguarded transitions "
                f"from {source!r} to {dests}"
            )


def _settlements(flow: FlowDefinition) -> Iterator[str]:
    for spec in flow.transitions:
        dest = flow.state(spec.dest)
        enters = spec.sources != {spec.dest}  # a self-loop stays where it is and settles nothing
        if enters and dest.settlement and not spec.actors <= flow.settled_by:
            extra = sorted(str(actor) for actor in spec.actors - flow.settled_by)
            yield f"event {spec.event!r} settles into {dest.name!r} but may be fired by {extra}"
        for source in sorted(spec.sources):
            if flow.state(source).kind.settled and not dest.kind.settled:
                yield (
                    f"event {spec.event!r} moves settled state {source!r} back to "
                    f"unsettled {dest.name!r}"
                )


def _bindings(flow: FlowDefinition) -> Iterator[str]:
    for spec in flow.transitions:
        unknown = sorted(set(spec.binds) - BINDABLE_FIELDS)
        if unknown:
            yield f"event {spec.event!r} binds unknown instance fields {unknown}"
