"""A flow's one decision table, compiled through ``transitions``: the only module importing it.

Each flow is compiled once, when its definition is built, into a ``transitions`` machine: nothing
is bound onto any object (``model=None``), there are no ``to_<state>()`` backdoors
(``auto_transitions=False``) and an illegal trigger raises. The machine's own table (each event's
transitions by source, in the order its trigger tries them, each behind its condition) is read
into a :class:`DecisionTable`, and everything that asks what a flow allows reads that table: the
definition's checks, :meth:`fsm.Engine.fire` and :meth:`fsm.Engine.allowed_events` (through
:mod:`fsm.decide`), replay, and the diagrams. Deciding walks the candidates in the machine's order
and takes the first open to the actor whose guard passes, as the trigger would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, cast

from transitions import EventData, Machine

from fsm.definition.spec import GuardContext, StateSpec, TransitionSpec
from fsm.model import Instance


@dataclass(frozen=True, slots=True)
class Moves:
    """Transitions sharing a source and an event (a step: a destination too), in trigger order."""

    specs: tuple[TransitionSpec, ...]
    actors: frozenset[str]
    """Every actor any of them allows."""

    def first_passing(
        self, instance: Instance, actor: str, payload: Mapping[str, Any]
    ) -> TransitionSpec | None:
        """The first transition open to ``actor`` whose guard passes (``None``: none does)."""
        ctx = None
        for spec in self.specs:
            if actor not in spec.actors:
                continue
            if spec.guard is None:
                return spec
            ctx = ctx or GuardContext(instance, actor, payload)  # built only for a guard
            if spec.guard.check(ctx):
                return spec
        return None


_NO_MOVES = Moves((), frozenset())


class DecisionTable:
    """What each event may do from each state, read from the flow's ``transitions`` machine."""

    __slots__ = ("events", "moves", "steps")

    def __init__(
        self, states: Iterable[StateSpec], initial: str, transitions: Iterable[TransitionSpec]
    ) -> None:
        """Compile the machine and read its table; the names must already be known to be valid."""
        conditions: dict[Callable[[EventData], bool], TransitionSpec] = {}
        machine = Machine(
            model=None,
            states=[state.name for state in states],
            initial=initial,
            transitions=[_config(spec, conditions) for spec in transitions],
            auto_transitions=False,
            ignore_invalid_triggers=False,
            send_event=True,
        )
        self.moves: Mapping[tuple[str, str], Moves] = _read_moves(machine, conditions)
        """By ``(source, event)``."""
        self.events: tuple[str, ...] = tuple(machine.events)
        """Every event, in order of first declaration."""
        self.steps: Mapping[tuple[str, str, str], Moves] = _by_destination(self.moves)
        """By ``(source, event, dest)``: who may take that step, as replay checks it."""

    def candidates(self, source: str, event: str) -> tuple[TransitionSpec, ...]:
        """The transitions ``event`` may take from ``source``, in the order they are tried."""
        return self.moves.get((source, event), _NO_MOVES).specs

    def events_from(self, source: str) -> tuple[str, ...]:
        """Events that have at least one transition out of ``source``."""
        return tuple(event for event in self.events if (source, event) in self.moves)


def _read_moves(
    machine: Machine, conditions: Mapping[Callable[[EventData], bool], TransitionSpec]
) -> Mapping[tuple[str, str], Moves]:
    table: dict[tuple[str, str], Moves] = {}
    for event_name, event in machine.events.items():
        for source, candidates in event.transitions.items():
            specs = tuple(conditions[cast(Any, t.conditions[0].func)] for t in candidates)
            if specs:
                table[source, event_name] = _moves(specs)
    return MappingProxyType(table)


def _by_destination(
    moves: Mapping[tuple[str, str], Moves],
) -> Mapping[tuple[str, str, str], Moves]:
    grouped: dict[tuple[str, str, str], tuple[TransitionSpec, ...]] = {}
    for (source, event), found in moves.items():
        for spec in found.specs:
            key = (source, event, spec.dest)
            grouped[key] = (*grouped.get(key, ()), spec)
    return MappingProxyType({key: _moves(specs) for key, specs in grouped.items()})


def _moves(specs: tuple[TransitionSpec, ...]) -> Moves:
    return Moves(specs, frozenset[str]().union(*(spec.actors for spec in specs)))


def _config(
    spec: TransitionSpec, conditions: dict[Callable[[EventData], bool], TransitionSpec]
) -> dict[str, Any]:
    condition = _condition(spec)
    conditions[condition] = spec
    return {
        "trigger": spec.event,
        "source": sorted(spec.sources),
        "dest": spec.dest,
        "conditions": [condition],
    }


def _condition(spec: TransitionSpec) -> Callable[[EventData], bool]:
    """The machine's condition for ``spec``: the actor is allowed and the guard passes."""
    guard = spec.guard

    def holds(event_data: EventData) -> bool:
        ctx = cast(GuardContext, event_data.args[0])  # type: ignore[index]
        if ctx.actor not in spec.actors:
            return False
        return guard is None or guard.check(ctx)

    return holds
