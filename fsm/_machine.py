"""The only module that imports ``transitions``.

One ``Machine`` is compiled per flow and shared by every instance of it: nothing is bound onto
any object (``model=None``), there are no ``to_<state>()`` backdoors (``auto_transitions=False``)
and an illegal trigger raises. Each step runs on a throwaway carrier that holds only ``state``,
never a database row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from transitions import EventData, Machine, MachineError

from fsm.definition import FlowDefinition, GuardContext, TransitionSpec


class _Carrier:
    __slots__ = ("state",)

    def __init__(self, state: str) -> None:
        self.state = state


class CompiledFlow:
    """A flow compiled once into a ``transitions`` machine."""

    def __init__(self, flow: FlowDefinition) -> None:
        self.flow = flow
        self._machine = Machine(
            model=None,
            states=[state.name for state in flow.states],
            initial=flow.initial,
            transitions=[_config(spec) for spec in flow.transitions],
            auto_transitions=False,
            ignore_invalid_triggers=False,
            send_event=True,
        )

    def step(self, state: str, event: str, ctx: GuardContext) -> str | None:
        """The state after ``event``, or ``None`` when no transition's conditions hold.

        Raises:
            LookupError: the flow has no transition for ``event`` from ``state``.
        """
        carrier = _Carrier(state)
        try:
            moved = self._machine.events[event].trigger(carrier, ctx)
        except (KeyError, MachineError) as exc:
            raise LookupError(f"no transition for {event!r} from {state!r}") from exc
        return carrier.state if moved else None


def _config(spec: TransitionSpec) -> dict[str, Any]:
    return {
        "trigger": spec.event,
        "source": sorted(spec.sources),
        "dest": spec.dest,
        "conditions": [_condition(spec)],
    }


def _condition(spec: TransitionSpec) -> Callable[[EventData], bool]:
    guard = spec.guard

    def holds(event_data: EventData) -> bool:
        ctx = cast(GuardContext, event_data.args[0])  # type: ignore[index]
        if ctx.actor not in spec.actors:
            return False
        return guard is None or guard.check(ctx)

    return holds
