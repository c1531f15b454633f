"""The only module that imports ``transitions``.

One ``Machine`` is compiled per flow and shared by every instance of it: nothing is bound onto
any object (``model=None``), there are no ``to_<state>()`` backdoors (``auto_transitions=False``)
and an illegal trigger raises. The machine's own table (each event's transitions by source, in
the order they are tried, each with its condition) is read once into :attr:`CompiledFlow.moves`,
and the engine decides from that table: the same first transition whose condition holds that
``Event.trigger`` would take, without the event data, carrier object and empty callback rounds
it builds for every event. :meth:`CompiledFlow.step` still runs the machine itself; a test holds
the two to the same answer for every flow, state, event, actor and guard outcome.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from transitions import EventData, Machine, MachineError

from fsm.definition.flow import Actor, FlowDefinition, GuardContext, TransitionSpec

if TYPE_CHECKING:
    from fsm.model import Instance


class _Carrier:
    __slots__ = ("state",)

    def __init__(self, state: str) -> None:
        self.state = state


@dataclass(frozen=True, slots=True)
class Moves:
    """What one event may do from one state: the transitions in the order the machine tries them."""

    specs: tuple[TransitionSpec, ...]
    actors: frozenset[Actor]
    """Every actor any of them allows."""

    def first_passing(
        self, instance: Instance, actor: Actor, payload: Mapping[str, Any]
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


class CompiledFlow:
    """A flow compiled once into a ``transitions`` machine, and its table of moves."""

    def __init__(self, flow: FlowDefinition) -> None:
        self.flow = flow
        specs: dict[Callable[[EventData], bool], TransitionSpec] = {}
        self._machine = Machine(
            model=None,
            states=[state.name for state in flow.states],
            initial=flow.initial,
            transitions=[_config(spec, specs) for spec in flow.transitions],
            auto_transitions=False,
            ignore_invalid_triggers=False,
            send_event=True,
        )
        self.moves: Mapping[tuple[str, str], Moves] = _moves(self._machine, specs)

    def step(self, state: str, event: str, ctx: GuardContext) -> str | None:
        """The state the machine's own trigger reaches, or ``None`` when no condition holds.

        Raises:
            LookupError: the flow has no transition for ``event`` from ``state``.
        """
        carrier = _Carrier(state)
        try:
            moved = self._machine.events[event].trigger(carrier, ctx)
        except (KeyError, MachineError) as exc:
            raise LookupError(f"no transition for {event!r} from {state!r}") from exc
        return carrier.state if moved else None


def _moves(
    machine: Machine, specs: Mapping[Callable[[EventData], bool], TransitionSpec]
) -> dict[tuple[str, str], Moves]:
    table: dict[tuple[str, str], Moves] = {}
    for event_name, event in machine.events.items():
        for source, candidates in event.transitions.items():
            if not candidates:
                continue
            chosen = tuple(
                specs[cast(Any, candidate.conditions[0].func)] for candidate in candidates
            )
            actors = frozenset[Actor]().union(*(spec.actors for spec in chosen))
            table[source, event_name] = Moves(chosen, actors)
    return table


def _config(
    spec: TransitionSpec, specs: dict[Callable[[EventData], bool], TransitionSpec]
) -> dict[str, Any]:
    condition = _condition(spec)
    specs[condition] = spec
    return {
        "trigger": spec.event,
        "source": sorted(spec.sources),
        "dest": spec.dest,
        "conditions": [condition],
    }


def _condition(spec: TransitionSpec) -> Callable[[EventData], bool]:
    guard = spec.guard

    def holds(event_data: EventData) -> bool:
        ctx = cast(GuardContext, event_data.args[0])  # type: ignore[index]
        if ctx.actor not in spec.actors:
            return False
        return guard is None or guard.check(ctx)

    return holds
