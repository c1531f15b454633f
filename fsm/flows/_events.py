"""The event types the built-in flows emit, derived from their states' kinds.

A state a consumer acts on gets a type: every state whose outcome is decided (succeeded, failed,
reversed) and every state that waits for a person. The type is the flow's subject and the state's
name, the subject's own prefix dropped (``link.failed``, not ``link.link_failed``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from fsm.definition import FlowDefinition, StateKind

_ANNOUNCED = frozenset(
    {StateKind.SUCCEEDED, StateKind.FAILED, StateKind.REVERSED, StateKind.REVIEW}
)


def event_types(flow: FlowDefinition, subject: str) -> Mapping[str, str]:
    """``{state: "subject.state"}`` for each state of ``flow`` a consumer acts on."""
    return MappingProxyType(
        {
            state.name: f"{subject}.{state.name.removeprefix(subject + '_')}"
            for state in flow.states
            if state.kind in _ANNOUNCED
        }
    )


__all__ = ["event_types"]
