"""The compiled move table decides exactly as the ``transitions`` machine it is read from."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from itertools import product

import pytest

from fsm import Actor, Deadline, FlowDefinition, Guard, GuardContext, Instance, StateKind, StateSpec
from fsm.definition.flow import transition
from fsm.definition.table import CompiledFlow
from fsm.flows import FLOWS
from tests.fsm.test_persistence import make_instance

MINUTE = timedelta(minutes=1)


def instances(flow: FlowDefinition, state: str) -> list[Instance]:
    """The instance in ``state`` with every wallet of the flow, with and without a mandate."""
    wallets: tuple[str | None, ...] = flow.wallets or (None,)
    return [
        replace(make_instance(), flow=flow.name, state=state, wallet=wallet, mandate=mandate)
        for wallet, mandate in product(wallets, (None, "MANDATE-1"))
    ]


def machine_answer(compiled: CompiledFlow, ctx: GuardContext, event: str) -> str | None:
    try:
        return compiled.step(ctx.instance.state, event, ctx)
    except LookupError:
        return None


def table_answer(compiled: CompiledFlow, ctx: GuardContext, event: str) -> str | None:
    moves = compiled.moves.get((ctx.instance.state, event))
    if moves is None:
        return None
    spec = moves.first_passing(ctx.instance, ctx.actor, ctx.payload)
    return None if spec is None else spec.dest


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_the_table_chooses_what_the_machine_chooses(name: str) -> None:
    flow = FLOWS[name]
    compiled = CompiledFlow(flow)
    checked = 0
    for state in flow.state_map:
        for instance, event, actor in product(instances(flow, state), flow.events, Actor):
            ctx = GuardContext(instance, actor, {})
            assert table_answer(compiled, ctx, event) == machine_answer(compiled, ctx, event), (
                state,
                event,
                actor,
                instance.wallet,
                instance.mandate,
            )
            checked += 1
    assert checked > 100


def test_guarded_alternatives_are_tried_in_declaration_order() -> None:
    calls: list[str] = []

    def refusing(_ctx: GuardContext) -> bool:
        calls.append("refusing")
        return False

    def passing(_ctx: GuardContext) -> bool:
        calls.append("passing")
        return True

    minute = Deadline(MINUTE, "close")
    flow = FlowDefinition(
        name="forked",
        states=(
            StateSpec("open", StateKind.START, deadline=minute),
            StateSpec("left", StateKind.IN_PROGRESS, deadline=minute),
            StateSpec("right", StateKind.IN_PROGRESS, deadline=minute),
            StateSpec("closed", StateKind.FAILED, final=True),
        ),
        initial="open",
        transitions=(
            transition("go", "open", "left", Actor.MERCHANT, guard=Guard("no", refusing)),
            transition("go", "open", "right", Actor.MERCHANT, guard=Guard("yes", passing)),
            transition("close", ("open", "left", "right"), "closed", Actor.TIMER),
        ),
    )
    compiled = CompiledFlow(flow)
    (instance,) = instances(flow, "open")[:1]
    ctx = GuardContext(instance, Actor.MERCHANT, {})
    assert table_answer(compiled, ctx, "go") == "right"
    assert calls == ["refusing", "passing"]
    calls.clear()
    assert machine_answer(compiled, ctx, "go") == "right"
    assert calls == ["refusing", "passing"]
    # an actor no transition allows never reaches a guard
    calls.clear()
    assert table_answer(compiled, GuardContext(instance, Actor.OPERATOR, {}), "go") is None
    assert calls == []
