"""The merchant's own step after an outcome, as a later version of a flow records it.

The first versions had the timer confirm a paid order some minutes after payment, which proved
nothing was ever told to the customer. From the versions built here, the outcome states the
customer must hear about are final and wait for no timer: the merchant tells the customer and
then records it (a follow-up, :attr:`~fsm.definition.TransitionSpec.follow_up`), which moves the
instance to a final state of the same outcome, so a person sees which outcomes were confirmed.
An outcome nobody confirmed is reported (``adapters.reconcile.unconfirmed``), never faked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from fsm.definition import (
    Actor,
    FlowDefinition,
    FlowMigration,
    StateKind,
    StateSpec,
    TransitionSpec,
    transition,
)

FAILURE_CONFIRMED = "failure_confirmed"
EXPIRY_CONFIRMED = "expiry_confirmed"


def with_follow_ups(
    flow: FlowDefinition,
    event: str,
    confirmed: Mapping[str, StateSpec],
    *,
    extra: tuple[TransitionSpec, ...] = (),
) -> FlowDefinition:
    """The next version of ``flow``: ``event`` confirms each outcome in ``confirmed``.

    Each key of ``confirmed`` (an outcome state) becomes final without a deadline, and ``event``,
    fired by the merchant or an operator, moves it to the state given for it. Any transition of
    ``flow`` that already fired ``event`` (the timer's) is dropped; ``extra`` is added.
    """
    known = {state.name for state in flow.states}
    dests = {spec.name: spec for spec in confirmed.values()}
    states = tuple(
        replace(state, final=True, deadline=None)
        if state.name in confirmed
        else dests.get(state.name, state)
        for state in flow.states
    )
    added = tuple(spec for spec in dests.values() if spec.name not in known)
    follow_ups = tuple(
        transition(
            event,
            source,
            dest.name,
            Actor.MERCHANT,
            Actor.OPERATOR,
            follow_up=True,
            description="the merchant told the customer, then recorded it",
        )
        for source, dest in confirmed.items()
    )
    return replace(
        flow,
        version=flow.version + 1,
        states=(*states, *added),
        transitions=(*_replaced(flow.transitions, event, follow_ups), *extra),
    )


def _replaced(
    transitions: tuple[TransitionSpec, ...], event: str, follow_ups: tuple[TransitionSpec, ...]
) -> list[TransitionSpec]:
    """``transitions`` with those of ``event`` dropped and ``follow_ups`` where the first was
    (or at the end), so the events a state allows keep their order."""
    kept = [spec for spec in transitions if spec.event != event]
    at = next((i for i, spec in enumerate(transitions) if spec.event == event), len(transitions))
    before = sum(1 for spec in transitions[:at] if spec.event != event)
    return [*kept[:before], *follow_ups, *kept[before:]]


def payment_outcomes(paid_confirmed: str) -> dict[str, StateSpec]:
    """A payment's outcomes the customer hears about, each to the state confirming it."""
    return {
        "paid": StateSpec(
            paid_confirmed,
            StateKind.SUCCEEDED,
            final=True,
            description="the merchant confirmed the order to the customer",
        ),
        "failed": StateSpec(
            FAILURE_CONFIRMED,
            StateKind.FAILED,
            final=True,
            description="the merchant told the customer the payment failed",
        ),
        "expired": StateSpec(
            EXPIRY_CONFIRMED,
            StateKind.FAILED,
            final=True,
            description="the merchant told the customer the payment expired",
        ),
    }


def confirmed_payment(
    flow: FlowDefinition, event: str, paid_confirmed: str
) -> tuple[FlowDefinition, FlowMigration]:
    """The next version of payment ``flow``, in which the merchant's ``event`` confirms each
    outcome (``paid`` to ``paid_confirmed``), and the migration to it."""
    confirmed = with_follow_ups(flow, event, payment_outcomes(paid_confirmed))
    return confirmed, same_states(flow, confirmed)


def same_states(old: FlowDefinition, new: FlowDefinition) -> FlowMigration:
    """The migration from ``old`` to ``new`` that leaves every unfinished instance in its state."""
    return FlowMigration(
        old.name,
        old.version,
        {state.name: state.name for state in old.states if not state.final},
        description="the merchant, not the timer, confirms outcomes to the customer",
    )


def follow_up_states(flow: FlowDefinition) -> frozenset[str]:
    """The states of ``flow`` a follow-up enters: outcomes the merchant confirmed."""
    return frozenset(spec.dest for spec in flow.transitions if spec.follow_up)


__all__ = [
    "EXPIRY_CONFIRMED",
    "FAILURE_CONFIRMED",
    "confirmed_payment",
    "follow_up_states",
    "payment_outcomes",
    "same_states",
    "with_follow_ups",
]
