"""Flow definitions: a lifecycle as frozen data, validated in full when it is built.

A :class:`FlowDefinition` is actors, states, transitions and deadlines. Building one runs every
check in :mod:`fsm.definition.checks` and raises :class:`~fsm.FlowDefinitionError` naming each
problem, so a broken lifecycle fails at import time instead of in production. Once its names
hold, the flow is compiled into its one :class:`~fsm.definition.table.DecisionTable`, which the
remaining checks, the engine, replay and the diagrams all read. Guards may refuse a transition
but never choose where it goes: at most one unguarded transition exists per ``(state, event)``,
which keeps replay deterministic.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from types import MappingProxyType
from typing import Any

from fsm.definition.checks import graph_problems, naming_problems
from fsm.definition.spec import (
    DEFAULT_SETTLED_BY,
    MIGRATE_EVENT,
    Deadline,
    StateSpec,
    TransitionSpec,
    set_field,
)
from fsm.definition.table import DecisionTable
from fsm.errors import FlowDefinitionError


@dataclass(frozen=True)
class FlowDefinition:
    """A lifecycle as data; building one validates it completely and compiles its table."""

    name: str
    states: tuple[StateSpec, ...]
    initial: str
    transitions: tuple[TransitionSpec, ...]
    actors: tuple[str, ...]
    """Every actor the transitions name, declared like the states: an undeclared one is refused."""
    description: str = ""
    wallets: tuple[str, ...] = ()
    """Wallets an instance of this flow may belong to; empty means any."""
    settled_by: frozenset[str] = DEFAULT_SETTLED_BY
    """Actors allowed to enter a settlement state."""
    version: int = 1
    """Which released version of the flow this is. Not part of the :attr:`fingerprint`: a
    version is a name given to content, and the release lock ties each version to its content."""
    table: DecisionTable = field(init=False, repr=False, compare=False)
    """The flow's one decision table, compiled when the definition is built."""

    def __post_init__(self) -> None:
        set_field(self, "initial", str(self.initial))
        set_field(self, "actors", tuple(str(actor) for actor in self.actors))
        set_field(self, "wallets", tuple(str(wallet) for wallet in self.wallets))
        set_field(self, "settled_by", frozenset(str(actor) for actor in self.settled_by))
        problems = naming_problems(self) + _version_problems(self)
        if not problems:  # the machine is built only from names that hold
            set_field(self, "table", DecisionTable(self.states, self.initial, self.transitions))
            problems = graph_problems(self, self.table)
        if problems:
            raise FlowDefinitionError(self.name, problems)

    @cached_property
    def state_map(self) -> Mapping[str, StateSpec]:
        """States by name."""
        return MappingProxyType({state.name: state for state in self.states})

    @property
    def events(self) -> tuple[str, ...]:
        """Every event name, in order of first declaration."""
        return self.table.events

    @cached_property
    def fingerprint(self) -> str:
        """A short hash of what the definition does; prose (descriptions) and the version number
        do not count."""
        data = _without_descriptions(flow_to_dict(self))
        del data["version"]
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def state(self, name: str) -> StateSpec:
        """The state called ``name`` (``KeyError`` when there is none)."""
        return self.state_map[name]

    def candidates(self, source: str, event: str) -> tuple[TransitionSpec, ...]:
        """The transitions ``event`` may take from ``source``, in the order they are tried."""
        return self.table.candidates(source, event)

    def events_from(self, source: str) -> tuple[str, ...]:
        """Events that have at least one transition out of ``source``."""
        return self.table.events_from(source)


def _version_problems(flow: FlowDefinition) -> list[str]:
    problems = []
    if isinstance(flow.version, bool) or not isinstance(flow.version, int) or flow.version < 1:
        problems.append(f"version {flow.version!r} is not a whole number from 1 up")
    if any(spec.event == MIGRATE_EVENT for spec in flow.transitions):
        problems.append(f"event {MIGRATE_EVENT!r} is the engine's own: name it otherwise")
    return problems


def flow_to_dict(flow: FlowDefinition) -> dict[str, Any]:
    """The definition as plain JSON-ready data, in a stable order; guards appear by name."""
    return {
        "name": flow.name,
        "version": flow.version,
        "description": flow.description,
        "initial": flow.initial,
        "wallets": list(flow.wallets),
        "actors": list(flow.actors),
        "settled_by": sorted(flow.settled_by),
        "states": [_state_to_dict(state) for state in flow.states],
        "transitions": [_transition_to_dict(spec) for spec in flow.transitions],
    }


def _without_descriptions(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _without_descriptions(v) for k, v in data.items() if k != "description"}
    if isinstance(data, list):
        return [_without_descriptions(item) for item in data]
    return data


def _state_to_dict(state: StateSpec) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": state.name,
        "kind": str(state.kind),
        "final": state.final,
        "settlement": state.settlement,
        "description": state.description,
    }
    if state.deadline is not None:
        data["deadline"] = _deadline_to_dict(state.deadline)
    return data


def _deadline_to_dict(deadline: Deadline) -> dict[str, Any]:
    # Optional parts appear only when set, so a deadline without them keeps its fingerprint.
    data: dict[str, Any] = {
        "after_seconds": deadline.after.total_seconds(),
        "on_expiry": deadline.on_expiry,
        "per_wallet": _seconds_by_wallet(deadline.per_wallet),
    }
    if deadline.backoff_cap is not None:
        data["backoff_cap_seconds"] = deadline.backoff_cap.total_seconds()
    if deadline.give_up is not None:
        data["give_up"] = {
            "after_seconds": deadline.give_up.after.total_seconds(),
            "event": deadline.give_up.event,
            "per_wallet": _seconds_by_wallet(deadline.give_up.per_wallet),
        }
    return data


def _seconds_by_wallet(values: Mapping[str, timedelta]) -> dict[str, float]:
    return {wallet: delta.total_seconds() for wallet, delta in sorted(values.items())}


def _transition_to_dict(spec: TransitionSpec) -> dict[str, Any]:
    data: dict[str, Any] = {
        "event": spec.event,
        "sources": sorted(spec.sources),
        "dest": spec.dest,
        "actors": sorted(spec.actors),
        "guard": spec.guard.name if spec.guard else None,
        "reversal": spec.reversal,
        "binds": list(spec.binds),
        "description": spec.description,
    }
    if spec.follow_up:  # only when set, so the transitions before follow-ups keep fingerprints
        data["follow_up"] = True
    return data
