"""The event types the built-in flows emit, derived from their states' kinds.

A state a consumer acts on gets a type: every state whose outcome is decided (succeeded, failed,
reversed) and every state that waits for a person. The type is the flow's subject and the state's
name, the subject's own prefix dropped (``link.failed``, not ``link.link_failed``), except for
the states a follow-up enters: the merchant confirmed an outcome to the customer, whichever it
was, so each of those is ``<subject>.confirmed`` (the event's ``state`` says which outcome).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from fsm.definition import FlowDefinition, StateKind
from fsm.flows._follow_up import follow_up_states

_ANNOUNCED = frozenset(
    {StateKind.SUCCEEDED, StateKind.FAILED, StateKind.REVERSED, StateKind.REVIEW}
)


def event_types(flow: FlowDefinition, subject: str) -> Mapping[str, str]:
    """``{state: "subject.state"}`` for each state of ``flow`` a consumer acts on."""
    confirmed = follow_up_states(flow)
    return MappingProxyType(
        {
            state.name: f"{subject}.confirmed"
            if state.name in confirmed
            else f"{subject}.{state.name.removeprefix(subject + '_')}"
            for state in flow.states
            if state.kind in _ANNOUNCED
        }
    )


__all__ = ["event_types"]
