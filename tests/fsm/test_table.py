"""The one decision table, compiled through ``transitions``: deciding and diagrams read it."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from fsm import Actor, Deadline, FlowDefinition, Guard, GuardContext, Instance, StateKind, StateSpec
from fsm.decide import allowed_events, decide
from fsm.definition import DecisionTable, TransitionSpec, transition
from fsm.errors import ActorNotAllowed, GuardRefused
from fsm.flows import FLOWS
from fsm.render.flow_dot import flow_edges
from tests.fsm.test_persistence import make_instance

MINUTE = timedelta(minutes=1)


def forked(calls: list[str]) -> FlowDefinition:
    """``go`` from ``open``: two guarded transitions, the first of which always refuses."""

    def refusing(_ctx: GuardContext) -> bool:
        calls.append("refusing")
        return False

    def passing(_ctx: GuardContext) -> bool:
        calls.append("passing")
        return True

    minute = Deadline(MINUTE, "close")
    return FlowDefinition(
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
            transition("close", ("open", "left", "right"), "closed", Actor.TIMER, Actor.OPERATOR),
        ),
        actors=(Actor.MERCHANT, Actor.TIMER, Actor.OPERATOR),
    )


def opened(flow: FlowDefinition) -> Instance:
    return replace(make_instance(), flow=flow.name, state="open", wallet=None)


def test_guarded_alternatives_are_tried_in_declaration_order() -> None:
    calls: list[str] = []
    flow = forked(calls)
    chosen = decide(flow, opened(flow), "go", Actor.MERCHANT, {})
    assert isinstance(chosen, TransitionSpec)
    assert chosen.dest == "right"
    assert calls == ["refusing", "passing"]


def test_an_actor_no_transition_allows_never_reaches_a_guard() -> None:
    calls: list[str] = []
    flow = forked(calls)
    refused = decide(flow, opened(flow), "go", Actor.OPERATOR, {})
    assert isinstance(refused, ActorNotAllowed)
    assert "allowed: ['merchant']" in refused.detail
    assert calls == []


def test_allowed_events_ask_the_guards_of_the_same_table() -> None:
    calls: list[str] = []
    flow = forked(calls)
    assert allowed_events(flow, opened(flow), None) == ("go", "close")
    assert allowed_events(flow, opened(flow), Actor.TIMER) == ("close",)
    assert calls == ["refusing", "passing"]  # asked once, for the merchant


def test_when_every_guard_refuses_the_refusal_names_them() -> None:
    flow = FlowDefinition(
        name="shut",
        states=(
            StateSpec("open", StateKind.START, deadline=Deadline(MINUTE, "close")),
            StateSpec("closed", StateKind.FAILED, final=True),
        ),
        initial="open",
        transitions=(
            transition("go", "open", "closed", Actor.MERCHANT, guard=Guard("never", bool_false)),
            transition("close", "open", "closed", Actor.TIMER),
        ),
        actors=(Actor.MERCHANT, Actor.TIMER),
    )
    refused = decide(flow, opened(flow), "go", Actor.MERCHANT, {})
    assert isinstance(refused, GuardRefused)
    assert refused.detail == "guard ['never']"


def bool_false(_ctx: GuardContext) -> bool:
    return False


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_the_table_holds_exactly_the_declared_transitions(name: str) -> None:
    """No ``to_<state>()`` backdoor and no event the flow does not declare."""
    flow = FLOWS[name]
    table = flow.table
    assert isinstance(table, DecisionTable)
    declared = {(source, spec.event) for spec in flow.transitions for source in spec.sources}
    assert set(table.moves) == declared
    assert set(table.events) == {spec.event for spec in flow.transitions}
    assert not [event for event in table.events if event.startswith("to_")]


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_the_diagram_draws_the_steps_of_the_table(name: str) -> None:
    flow = FLOWS[name]
    edges = flow_edges(flow)
    assert {edge.key for edge in edges} == set(flow.table.steps)
    for edge in edges:
        assert set(edge.actors) == flow.table.steps[edge.key].actors


def test_a_flow_is_compiled_once_when_it_is_built() -> None:
    flow = FLOWS["ewallet_payment"]
    assert flow.table is flow.table
    assert replace(flow, description="again").table is not flow.table
