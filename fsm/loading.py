"""Flow definitions from JSON: the format ``flow_to_dict`` writes, read back and validated.

This lets a reviewer check a proposed flow, or compare a flow with an older version of itself,
without writing Python. Guards are referred to by name and resolved from a registry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fsm.definition import (
    Actor,
    Deadline,
    FlowDefinition,
    Guard,
    StateKind,
    StateSpec,
    TransitionSpec,
    flow_to_dict,
)
from fsm.errors import FlowDefinitionError
from fsm.flows import GUARDS


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _DeadlineDoc(_Doc):
    after_seconds: float = Field(gt=0)
    on_expiry: str
    per_wallet: dict[str, float] = {}


class _StateDoc(_Doc):
    name: str = Field(min_length=1)
    kind: StateKind
    final: bool = False
    settlement: bool = False
    description: str = ""
    deadline: _DeadlineDoc | None = None


class _TransitionDoc(_Doc):
    event: str = Field(min_length=1)
    sources: list[str]
    dest: str
    actors: list[Actor]
    guard: str | None = None
    reversal: bool = False
    binds: list[str] = []
    description: str = ""


class _FlowDoc(_Doc):
    name: str = Field(min_length=1)
    description: str = ""
    initial: str
    wallets: list[str] = []
    settled_by: list[Actor] = [Actor.STATUS_INQUIRY, Actor.OPERATOR]
    states: list[_StateDoc]
    transitions: list[_TransitionDoc]


def flow_from_dict(
    data: Mapping[str, Any], *, guards: Mapping[str, Guard] = GUARDS
) -> FlowDefinition:
    """Build and validate a flow from ``flow_to_dict`` data.

    Raises:
        FlowDefinitionError: the data is malformed, names an unknown guard, or the flow is invalid.
    """
    name = str(data.get("name", "<unnamed>")) if isinstance(data, Mapping) else "<unnamed>"
    try:
        doc = _FlowDoc.model_validate(data)
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc'])) or 'flow'}: {e['msg']}" for e in exc.errors()]
        raise FlowDefinitionError(name, problems) from None
    unknown = sorted({t.guard for t in doc.transitions if t.guard and t.guard not in guards})
    if unknown:
        raise FlowDefinitionError(doc.name, [f"unknown guard {g!r}" for g in unknown])
    return FlowDefinition(
        name=doc.name,
        description=doc.description,
        initial=doc.initial,
        wallets=tuple(doc.wallets),
        settled_by=frozenset(doc.settled_by),
        states=tuple(_state(state) for state in doc.states),
        transitions=tuple(_transition(spec, guards) for spec in doc.transitions),
    )


def load_flow_file(path: str | Path) -> FlowDefinition:
    """Read a flow from a JSON file.

    Raises:
        FlowDefinitionError: the file is not JSON, or the flow in it is invalid.
    """
    source = Path(path)
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FlowDefinitionError(source.name, [f"cannot read {source}: {exc}"]) from None
    if not isinstance(data, dict):
        raise FlowDefinitionError(source.name, ["the file must hold one JSON object"])
    return flow_from_dict(data)


def dump_flow(flow: FlowDefinition) -> str:
    """The flow as indented JSON text, suitable for committing and diffing."""
    return json.dumps(flow_to_dict(flow), indent=2, ensure_ascii=False) + "\n"


def _state(doc: _StateDoc) -> StateSpec:
    deadline = None
    if doc.deadline is not None:
        deadline = Deadline(
            after=timedelta(seconds=doc.deadline.after_seconds),
            on_expiry=doc.deadline.on_expiry,
            per_wallet={k: timedelta(seconds=v) for k, v in doc.deadline.per_wallet.items()},
        )
    return StateSpec(
        name=doc.name,
        kind=doc.kind,
        final=doc.final,
        settlement=doc.settlement,
        deadline=deadline,
        description=doc.description,
    )


def _transition(doc: _TransitionDoc, guards: Mapping[str, Guard]) -> TransitionSpec:
    return TransitionSpec(
        event=doc.event,
        sources=frozenset(doc.sources),
        dest=doc.dest,
        actors=frozenset(doc.actors),
        guard=guards[doc.guard] if doc.guard else None,
        reversal=doc.reversal,
        binds=tuple(doc.binds),
        description=doc.description,
    )
