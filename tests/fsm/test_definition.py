"""Flow definitions: every check names what is wrong, and the built-in flows keep their promises.

Each broken flow below is a small valid flow (``build()``) with exactly one thing changed, so a
test fails if the check misses the problem or if an unrelated check starts firing.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest

from fsm import Actor, Deadline, FlowDefinition, FlowDefinitionError, Guard, StateKind, StateSpec
from fsm.definition import TransitionSpec, flow_from_dict, flow_to_dict, transition
from fsm.flows import FLOWS, GUARDS, Wallet

MINUTE = timedelta(minutes=1)
ALWAYS = Guard("always", lambda _ctx: True)


def base_states() -> list[StateSpec]:
    return [
        StateSpec("new", StateKind.START, deadline=Deadline(MINUTE, "expire")),
        StateSpec("waiting", StateKind.WAITING_PROVIDER, deadline=Deadline(MINUTE, "expire")),
        StateSpec("done", StateKind.SUCCEEDED, final=True, settlement=True),
        StateSpec("expired", StateKind.FAILED, final=True),
        StateSpec("refunded", StateKind.REVERSED, final=True, settlement=True),
    ]


def base_transitions() -> list[TransitionSpec]:
    return [
        transition("submit", "new", "waiting", Actor.MERCHANT),
        transition("confirm", "waiting", "done", Actor.STATUS_INQUIRY),
        transition("expire", ("new", "waiting"), "expired", Actor.TIMER),
        transition("refund", "done", "refunded", Actor.OPERATOR, reversal=True),
    ]


def used_actors(transitions: Sequence[TransitionSpec]) -> tuple[str, ...]:
    """The actors the transitions name, in order of first use: what a flow declares."""
    return tuple(dict.fromkeys(actor for spec in transitions for actor in sorted(spec.actors)))


def build(
    states: Sequence[StateSpec] | None = None,
    transitions: Sequence[TransitionSpec] | None = None,
    *,
    initial: str = "new",
    actors: Sequence[str] | None = None,
    settled_by: frozenset[str] | None = None,
    wallets: Sequence[str] = (),
) -> FlowDefinition:
    extra: dict[str, Any] = {} if settled_by is None else {"settled_by": settled_by}
    chosen = tuple(base_transitions() if transitions is None else transitions)
    return FlowDefinition(
        name="tiny",
        states=tuple(base_states() if states is None else states),
        initial=initial,
        transitions=chosen,
        actors=used_actors(chosen) if actors is None else tuple(actors),
        wallets=tuple(wallets),
        **extra,
    )


def problems_of(
    states: Sequence[StateSpec] | None = None,
    transitions: Sequence[TransitionSpec] | None = None,
    **kwargs: Any,
) -> tuple[str, ...]:
    with pytest.raises(FlowDefinitionError) as info:
        build(states, transitions, **kwargs)
    error = info.value
    assert error.flow == "tiny"
    assert error.problems
    for problem in error.problems:  # the message lists every problem
        assert problem in str(error)
    return error.problems


def only(problems: Sequence[str]) -> str:
    assert len(problems) == 1, problems
    return problems[0]


def naming(problems: Sequence[str], *needles: str) -> list[str]:
    return [p for p in problems if all(needle in p for needle in needles)]


def replace_state(name: str, spec: StateSpec) -> list[StateSpec]:
    return [spec if state.name == name else state for state in base_states()]


def test_base_flow_is_valid() -> None:
    flow = build()
    assert flow.events == ("submit", "confirm", "expire", "refund")
    assert flow.events_from("waiting") == ("confirm", "expire")


# --- unknown names ---------------------------------------------------------------------------


def test_unknown_source_state_is_named() -> None:
    transitions = [*base_transitions(), transition("poke", "nowhere", "done", Actor.OPERATOR)]
    problem = only(problems_of(transitions=transitions))
    assert "'nowhere'" in problem
    assert "'poke'" in problem
    assert "leaves unknown state" in problem


def test_unknown_destination_state_is_named() -> None:
    transitions = [*base_transitions(), transition("poke", "waiting", "limbo", Actor.OPERATOR)]
    problem = only(problems_of(transitions=transitions))
    assert "'limbo'" in problem
    assert "enters unknown state" in problem


def test_unknown_initial_state_is_named() -> None:
    problem = only(problems_of(initial="genesis"))
    assert "initial state 'genesis'" in problem


def test_duplicate_state_names_are_reported() -> None:
    states = [*base_states(), StateSpec("waiting", StateKind.IN_PROGRESS)]
    problem = only(problems_of(states=states))
    assert "'waiting'" in problem
    assert "2 times" in problem


# --- graph checks ----------------------------------------------------------------------------


def test_unreachable_state_is_named() -> None:
    orphan = StateSpec("orphan", StateKind.IN_PROGRESS, deadline=Deadline(MINUTE, "expire"))
    states = [*base_states(), orphan]
    transitions = base_transitions()
    transitions[2] = transition("expire", ("new", "waiting", "orphan"), "expired", Actor.TIMER)
    problem = only(problems_of(states, transitions))
    assert "'orphan'" in problem
    assert "unreachable" in problem


def test_final_state_that_cannot_be_reached_is_named() -> None:
    states = [*base_states(), StateSpec("voided", StateKind.REVERSED, final=True)]
    problem = only(problems_of(states=states))
    assert "final state 'voided' cannot be reached" in problem


def test_non_final_state_without_exit_is_named() -> None:
    states = [
        *base_states(),
        StateSpec("stuck", StateKind.IN_PROGRESS, deadline=Deadline(MINUTE, "poll")),
    ]
    transitions = [
        *base_transitions(),
        transition("hold", "waiting", "stuck", Actor.MERCHANT),
        transition("poll", "stuck", "stuck", Actor.TIMER),  # a self-loop is no way out
    ]
    problem = only(problems_of(states, transitions))
    assert "non-final state 'stuck' has no way out" in problem


def test_cycle_that_never_reaches_a_final_state_is_named() -> None:
    states = [
        *base_states(),
        StateSpec("ping", StateKind.IN_PROGRESS, deadline=Deadline(MINUTE, "bounce")),
        StateSpec("pong", StateKind.IN_PROGRESS, deadline=Deadline(MINUTE, "bounce")),
    ]
    transitions = [
        *base_transitions(),
        transition("serve", "waiting", "ping", Actor.MERCHANT),
        transition("bounce", "ping", "pong", Actor.TIMER),
        transition("bounce", "pong", "ping", Actor.TIMER),
    ]
    problems = problems_of(states, transitions)
    assert naming(problems, "'ping'", "cannot reach any final state")
    assert naming(problems, "'pong'", "cannot reach any final state")
    assert len(problems) == 2


def test_final_state_exit_that_is_not_a_reversal_is_named() -> None:
    transitions = base_transitions()
    transitions[3] = transition("refund", "done", "refunded", Actor.OPERATOR, reversal=False)
    problem = only(problems_of(transitions=transitions))
    assert "final state 'done'" in problem
    assert "'refund'" in problem
    assert "not a declared reversal" in problem


def test_declared_reversal_out_of_a_final_state_is_accepted() -> None:
    flow = build()  # refund leaves the final state 'done' as a declared reversal
    (refund,) = flow.candidates("done", "refund")
    assert refund.reversal
    assert flow.state("done").final


def test_a_self_loop_on_a_final_settled_state_by_the_merchant_is_accepted() -> None:
    # A refund request records a step on a settled payment and moves nothing.
    transitions = [
        *base_transitions(),
        transition("request_refund", "done", "done", Actor.MERCHANT, Actor.OPERATOR),
        transition("request_refund", "refunded", "refunded", Actor.MERCHANT),
    ]
    flow = build(transitions=transitions)
    (loop,) = flow.candidates("done", "request_refund")
    assert (loop.dest, loop.reversal) == ("done", False)


def test_a_self_loop_does_not_excuse_an_exit_beside_it() -> None:
    transitions = [
        *base_transitions(),
        transition("request_refund", ("done", "refunded"), "refunded", Actor.MERCHANT),
    ]
    problems = problems_of(transitions=transitions)
    assert naming(problems, "final state 'done'", "'request_refund'", "not a declared reversal")
    assert naming(problems, "'request_refund'", "settles into 'refunded'", "merchant")
    assert len(problems) == 2  # the loop on 'refunded' itself is no problem


def test_two_unguarded_transitions_for_one_state_and_event_are_named() -> None:
    transitions = [
        *base_transitions(),
        transition("confirm", "waiting", "expired", Actor.STATUS_INQUIRY),
    ]
    problem = only(problems_of(transitions=transitions))
    assert "'confirm'" in problem
    assert "'waiting'" in problem
    assert "2 unguarded transitions" in problem


def test_one_guarded_and_one_unguarded_transition_are_accepted() -> None:
    guarded = transition("confirm", "waiting", "expired", Actor.STATUS_INQUIRY, guard=ALWAYS)
    flow = build(transitions=[*base_transitions(), guarded])
    assert [spec.dest for spec in flow.candidates("waiting", "confirm")] == ["done", "expired"]


# --- deadlines -------------------------------------------------------------------------------


def test_non_final_state_without_deadline_is_named() -> None:
    states = replace_state("waiting", StateSpec("waiting", StateKind.WAITING_PROVIDER))
    problem = only(problems_of(states=states))
    assert "non-final state 'waiting' has no deadline" in problem


def test_deadline_event_the_timer_may_not_fire_is_named() -> None:
    # 'confirm' leaves 'waiting', but only a status inquiry may fire it
    deadline = Deadline(MINUTE, "confirm")
    states = replace_state(
        "waiting", StateSpec("waiting", StateKind.WAITING_PROVIDER, deadline=deadline)
    )
    problem = only(problems_of(states=states))
    assert "deadline of state 'waiting'" in problem
    assert "'confirm'" in problem
    assert "timer may not fire" in problem


def test_deadline_event_without_transition_from_that_state_is_named() -> None:
    # 'refund' is an event of the flow, but it has no transition out of 'new'
    deadline = Deadline(MINUTE, "refund")
    states = replace_state("new", StateSpec("new", StateKind.START, deadline=deadline))
    problem = only(problems_of(states=states))
    assert "deadline of state 'new'" in problem
    assert "'refund'" in problem


def test_final_state_with_deadline_is_named() -> None:
    deadline = Deadline(MINUTE, "expire")
    states = replace_state(
        "expired", StateSpec("expired", StateKind.FAILED, final=True, deadline=deadline)
    )
    problem = only(problems_of(states=states))
    assert "final state 'expired' declares a deadline" in problem


# --- settlement ------------------------------------------------------------------------------


def test_settlement_by_actor_outside_settled_by_is_named() -> None:
    transitions = base_transitions()
    transitions[1] = transition(
        "confirm", "waiting", "done", Actor.STATUS_INQUIRY, Actor.BROWSER_CALLBACK
    )
    problem = only(problems_of(transitions=transitions))
    assert "'confirm'" in problem
    assert "'done'" in problem
    assert "browser_callback" in problem
    assert "status_inquiry" not in problem  # only the untrusted actor is named


def test_settled_by_decides_who_may_settle() -> None:
    transitions = base_transitions()
    transitions[1] = transition("confirm", "waiting", "done", "customer")
    assert problems_of(transitions=transitions)  # not trusted by default
    flow = build(transitions=transitions, settled_by=frozenset({"customer", Actor.OPERATOR}))
    assert flow.settled_by == frozenset({"customer", Actor.OPERATOR})


# --- actors ----------------------------------------------------------------------------------


def test_a_flow_may_declare_actors_of_its_own() -> None:
    transitions = [*base_transitions(), transition("poke", "waiting", "waiting", "robot")]
    flow = build(transitions=transitions)
    assert flow.actors == ("merchant", "status_inquiry", "timer", "operator", "robot")
    assert flow.candidates("waiting", "poke")[0].actors == {"robot"}


def test_an_undeclared_actor_is_named() -> None:
    transitions = [*base_transitions(), transition("poke", "waiting", "waiting", "robot")]
    problem = only(problems_of(transitions=transitions, actors=used_actors(base_transitions())))
    assert "transition #5 ('poke') names actor 'robot', which the flow does not declare" in problem


def test_an_actor_declared_twice_or_never_used_is_named() -> None:
    declared = (*used_actors(base_transitions()), "merchant", "ghost")
    problems = problems_of(actors=declared)
    assert naming(problems, "actor 'merchant' is declared 2 times")
    assert naming(problems, "actor 'ghost' is declared, but no transition names it")
    assert len(problems) == 2


def test_settled_by_must_name_declared_actors() -> None:
    problem = only(problems_of(settled_by=frozenset({Actor.STATUS_INQUIRY, "auditor"})))
    assert "settled_by names actor 'auditor', which the flow does not declare" in problem


def test_an_actor_name_too_long_to_store_is_named() -> None:
    name = "a" * 33
    transitions = [*base_transitions(), transition("poke", "waiting", "waiting", name)]
    problem = only(problems_of(transitions=transitions))
    assert f"actor name {name!r} is not 1 to 32 characters" in problem


def test_settled_state_leading_back_to_unsettled_is_named() -> None:
    transitions = [
        *base_transitions(),
        transition("reopen", "done", "waiting", Actor.OPERATOR, reversal=True),
    ]
    problem = only(problems_of(transitions=transitions))
    assert "'reopen'" in problem
    assert "settled state 'done' back to unsettled 'waiting'" in problem


# --- binds and many problems -----------------------------------------------------------------


def test_unknown_bind_field_is_named() -> None:
    transitions = base_transitions()
    transitions[0] = transition(
        "submit", "new", "waiting", Actor.MERCHANT, binds=("tx_id", "amount")
    )
    problem = only(problems_of(transitions=transitions))
    assert "'submit'" in problem
    assert "['amount']" in problem


def test_several_problems_are_reported_at_once() -> None:
    states = replace_state("waiting", StateSpec("waiting", StateKind.WAITING_PROVIDER))
    transitions = [
        transition("submit", "new", "waiting", Actor.MERCHANT, binds=("colour",)),
        transition("confirm", "waiting", "done", Actor.STATUS_INQUIRY, Actor.MERCHANT),
        transition("expire", ("new", "waiting"), "expired", Actor.TIMER),
        transition("refund", "done", "refunded", Actor.OPERATOR, reversal=True),
    ]
    problems = problems_of(states, transitions)
    assert naming(problems, "'waiting'", "no deadline")
    assert naming(problems, "'submit'", "colour")
    assert naming(problems, "'confirm'", "'done'", "merchant")
    assert len(problems) == 3


# --- flows from JSON-like data ---------------------------------------------------------------


def base_dict() -> dict[str, Any]:
    return copy.deepcopy(flow_to_dict(build()))


def json_problems(data: dict[str, Any]) -> tuple[str, ...]:
    with pytest.raises(FlowDefinitionError) as info:
        flow_from_dict(data, guards=GUARDS)
    return info.value.problems


def test_dict_round_trip_of_valid_flow() -> None:
    flow = flow_from_dict(base_dict(), guards=GUARDS)
    assert flow.fingerprint == build().fingerprint
    assert flow_to_dict(flow) == flow_to_dict(build())


def test_dict_with_unknown_destination_is_refused() -> None:
    data = base_dict()
    data["transitions"][1]["dest"] = "limbo"
    problem = only(json_problems(data))
    assert "'limbo'" in problem


def test_dict_without_deadline_is_refused() -> None:
    data = base_dict()
    del data["states"][1]["deadline"]
    problem = only(json_problems(data))
    assert "non-final state 'waiting' has no deadline" in problem


def test_dict_with_untrusted_settlement_is_refused() -> None:
    data = base_dict()
    data["actors"].append("provider_notification")
    data["transitions"][1]["actors"].append("provider_notification")
    problem = only(json_problems(data))
    assert "'done'" in problem
    assert "provider_notification" in problem


def test_dict_with_an_undeclared_actor_is_refused() -> None:
    data = base_dict()
    data["transitions"][1]["actors"].append("provider_notification")
    problem = only(json_problems(data))
    assert "names actor 'provider_notification', which the flow does not declare" in problem


def test_dict_without_actors_is_refused() -> None:
    data = base_dict()
    del data["actors"]
    assert naming(json_problems(data), "actors")


def test_dict_with_unknown_guard_is_refused() -> None:
    data = base_dict()
    data["transitions"][1]["guard"] = "lucky_day"
    problem = only(json_problems(data))
    assert "unknown guard 'lucky_day'" in problem


def test_dict_with_known_guard_resolves_it() -> None:
    data = base_dict()
    data["transitions"][1]["guard"] = "push_wallet"
    flow = flow_from_dict(data, guards=GUARDS)
    (confirm,) = flow.candidates("waiting", "confirm")
    assert confirm.guard is GUARDS["push_wallet"]


def test_dict_with_malformed_field_names_its_location() -> None:
    data = base_dict()
    data["states"][0]["kind"] = "sleepy"
    data["transitions"][0]["actors"] = [7]
    problems = json_problems(data)
    assert naming(problems, "states.0.kind")
    assert naming(problems, "transitions.0.actors.0")


def test_dict_with_unexpected_key_is_refused() -> None:
    data = base_dict()
    data["transitions"][0]["colour"] = "blue"
    assert naming(json_problems(data), "transitions.0.colour")


def test_dict_with_duplicate_states_is_refused() -> None:
    data = base_dict()
    data["states"].append(copy.deepcopy(data["states"][1]))
    problem = only(json_problems(data))
    assert "'waiting'" in problem
    assert "2 times" in problem


# --- the built-in flows ----------------------------------------------------------------------

MERCHANT_FLOWS = ("ewallet_payment", "astrapay_payment")
SETTLING_STATES = frozenset({"paid", "failed", "expired", "voided", "refunded"})
HINT_ACTORS = frozenset({Actor.BROWSER_CALLBACK, Actor.PROVIDER_NOTIFICATION})


def test_the_three_built_in_flows_exist() -> None:
    assert set(FLOWS) == {"ewallet_payment", "astrapay_link", "astrapay_payment"}
    for name, flow in FLOWS.items():
        assert flow.name == name


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_built_in_flow_is_valid_when_rebuilt(name: str) -> None:
    flow = FLOWS[name]
    rebuilt = FlowDefinition(
        name=flow.name,
        states=flow.states,
        initial=flow.initial,
        transitions=flow.transitions,
        actors=flow.actors,
        description=flow.description,
        wallets=flow.wallets,
        settled_by=flow.settled_by,
    )
    assert rebuilt.fingerprint == flow.fingerprint


@pytest.mark.parametrize("name", MERCHANT_FLOWS)
def test_merchant_flow_settles_only_by_inquiry_or_operator(name: str) -> None:
    flow = FLOWS[name]
    settling = [  # a self-loop (a refund request) stays where it is and settles nothing
        spec
        for spec in flow.transitions
        if spec.dest in SETTLING_STATES and spec.sources != {spec.dest}
    ]
    assert {spec.dest for spec in settling} == SETTLING_STATES & set(flow.state_map)
    assert {"paid", "failed", "expired", "refunded"} <= {spec.dest for spec in settling}
    for spec in settling:
        assert spec.actors <= {Actor.STATUS_INQUIRY, Actor.OPERATOR}, spec.event
        assert flow.state(spec.dest).settlement, spec.dest
    assert flow.settled_by == {Actor.STATUS_INQUIRY, Actor.OPERATOR}


@pytest.mark.parametrize("name", MERCHANT_FLOWS)
def test_merchant_flow_hints_never_settle(name: str) -> None:
    flow = FLOWS[name]
    hinted = [spec for spec in flow.transitions if spec.actors & HINT_ACTORS]
    assert {Actor.BROWSER_CALLBACK, Actor.PROVIDER_NOTIFICATION} <= set().union(
        *(spec.actors for spec in hinted)
    )
    for spec in hinted:
        dest = flow.state(spec.dest)
        assert not dest.kind.settled, (spec.event, spec.dest)
        assert not dest.settlement, (spec.event, spec.dest)


@pytest.mark.parametrize(
    ("state", "wallet", "expected"),
    [
        ("awaiting_approval", Wallet.OVO, timedelta(seconds=55)),
        ("redirected_to_partner", Wallet.DANA, timedelta(hours=24)),
        ("redirected_to_partner", Wallet.LINKAJA, timedelta(minutes=5)),
        ("redirected_to_partner", Wallet.SHOPEEPAY, timedelta(minutes=5)),
    ],
)
def test_ewallet_deadline_per_wallet(state: str, wallet: Wallet, expected: timedelta) -> None:
    deadline = FLOWS["ewallet_payment"].state(state).deadline
    assert deadline is not None
    assert deadline.for_wallet(wallet) == expected
    assert deadline.on_expiry == "check_status"


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_every_non_final_state_of_built_in_flow_has_timer_deadline(name: str) -> None:
    flow = FLOWS[name]
    for state in flow.states:
        if state.final:
            assert state.deadline is None, state.name
            continue
        assert state.deadline is not None, state.name
        timed = [
            spec
            for spec in flow.candidates(state.name, state.deadline.on_expiry)
            if Actor.TIMER in spec.actors
        ]
        assert timed, state.name


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_json_round_trip_keeps_fingerprint(name: str) -> None:
    flow = FLOWS[name]
    again = flow_from_dict(flow_to_dict(flow), guards=GUARDS)
    assert again.fingerprint == flow.fingerprint
    assert flow_to_dict(again) == flow_to_dict(flow)
    guards = {(s.event, s.dest): s.guard for s in flow.transitions}
    assert {(s.event, s.dest): s.guard for s in again.transitions} == guards


def test_description_changes_keep_fingerprint() -> None:
    flow = FLOWS["ewallet_payment"]
    data = flow_to_dict(flow)
    data["description"] = "reworded"
    data["states"][0]["description"] = "reworded too"
    data["transitions"][0]["description"] = "and this"
    assert flow_from_dict(data, guards=GUARDS).fingerprint == flow.fingerprint


def test_transition_change_changes_fingerprint() -> None:
    flow = FLOWS["ewallet_payment"]
    data = flow_to_dict(flow)
    request = next(t for t in data["transitions"] if t["event"] == "request_payment")
    request["actors"].append("operator")
    changed = flow_from_dict(
        data, guards=GUARDS
    )  # still valid: an operator may also request the payment
    assert changed.fingerprint != flow.fingerprint


def test_deadline_change_changes_fingerprint() -> None:
    flow = FLOWS["ewallet_payment"]
    data = flow_to_dict(flow)
    approval = next(s for s in data["states"] if s["name"] == "awaiting_approval")
    approval["deadline"]["per_wallet"]["ovo"] = 60.0
    assert flow_from_dict(data, guards=GUARDS).fingerprint != flow.fingerprint


def test_built_in_flow_with_unknown_guard_in_json_is_refused() -> None:
    data = flow_to_dict(FLOWS["ewallet_payment"])
    push = next(t for t in data["transitions"] if t["event"] == "push_to_app")
    push["guard"] = "ovo_only"
    with pytest.raises(FlowDefinitionError) as info:
        flow_from_dict(data, guards=GUARDS)
    assert info.value.flow == "ewallet_payment"
    assert info.value.problems == ("unknown guard 'ovo_only'",)
