"""Flow definitions from JSON: the format ``flow_to_dict`` writes, read back and validated.

This lets a reviewer check a proposed flow, or compare a flow with an older version of itself,
without writing Python. Guards are referred to by name and resolved from the registry the caller
passes (the built-in flows' is :data:`fsm.flows.GUARDS`).

A document without an ``actors`` field was exported before flows declared their actors: it
declares the actors it uses (its transitions' and ``settled_by``), and actor names since renamed
are read under their new names from the map the caller passes (the built-in flows' is
:data:`fsm.flows.RENAMED_ACTORS`), so an old export still compares with today's flow.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fsm.definition.flow import FlowDefinition, flow_to_dict
from fsm.definition.spec import (
    DEFAULT_SETTLED_BY,
    Actor,
    Deadline,
    GiveUp,
    Guard,
    StateKind,
    StateSpec,
    TransitionSpec,
)
from fsm.errors import FlowDefinitionError

_NO_GUARDS: Mapping[str, Guard] = MappingProxyType({})
_NO_RENAMES: Mapping[str, str] = MappingProxyType({})
_ENGINE_ACTORS = {str(actor): rank for rank, actor in enumerate(Actor)}


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _GiveUpDoc(_Doc):
    after_seconds: float = Field(gt=0)
    event: str
    per_wallet: dict[str, float] = {}


class _DeadlineDoc(_Doc):
    after_seconds: float = Field(gt=0)
    on_expiry: str
    per_wallet: dict[str, float] = {}
    backoff_cap_seconds: float | None = Field(default=None, gt=0)
    give_up: _GiveUpDoc | None = None


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
    actors: list[str]
    guard: str | None = None
    reversal: bool = False
    follow_up: bool = False
    binds: list[str] = []
    description: str = ""


class _FlowDoc(_Doc):
    name: str = Field(min_length=1)
    version: int = Field(default=1, ge=1)
    """Absent from the exports made before flows had versions: those are all version 1."""
    description: str = ""
    initial: str
    wallets: list[str] = []
    actors: list[str] | None = None
    """Absent from the exports made before flows declared their actors."""
    settled_by: list[str] = sorted(DEFAULT_SETTLED_BY)
    states: list[_StateDoc]
    transitions: list[_TransitionDoc]


def flow_from_dict(
    data: Mapping[str, Any],
    *,
    guards: Mapping[str, Guard] = _NO_GUARDS,
    renamed_actors: Mapping[str, str] = _NO_RENAMES,
) -> FlowDefinition:
    """Build and validate a flow from ``flow_to_dict`` data, resolving guard names in ``guards``.

    Data without ``actors`` (an older export) declares the actors it uses, each old name in
    ``renamed_actors`` read as its new one.

    Raises:
        FlowDefinitionError: the data is malformed, names an unknown guard, or the flow is invalid.
    """
    name = str(data.get("name", "<unnamed>")) if isinstance(data, Mapping) else "<unnamed>"
    try:
        doc = _FlowDoc.model_validate(data)
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc'])) or 'flow'}: {e['msg']}" for e in exc.errors()]
        raise FlowDefinitionError(name, problems) from None
    if doc.actors is None:
        doc = _with_declared_actors(doc, renamed_actors)
    unknown = sorted({t.guard for t in doc.transitions if t.guard and t.guard not in guards})
    if unknown:
        raise FlowDefinitionError(doc.name, [f"unknown guard {g!r}" for g in unknown])
    return FlowDefinition(
        name=doc.name,
        version=doc.version,
        description=doc.description,
        initial=doc.initial,
        wallets=tuple(doc.wallets),
        actors=tuple(doc.actors or ()),
        settled_by=frozenset(doc.settled_by),
        states=tuple(_state(state) for state in doc.states),
        transitions=tuple(_transition(spec, guards) for spec in doc.transitions),
    )


def load_flow_file(
    path: str | Path,
    *,
    guards: Mapping[str, Guard] = _NO_GUARDS,
    renamed_actors: Mapping[str, str] = _NO_RENAMES,
) -> FlowDefinition:
    """Read a flow from a JSON file, as :func:`flow_from_dict` reads its data.

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
    return flow_from_dict(data, guards=guards, renamed_actors=renamed_actors)


def dump_flow(flow: FlowDefinition) -> str:
    """The flow as indented JSON text, suitable for committing and diffing."""
    return json.dumps(flow_to_dict(flow), indent=2, ensure_ascii=False) + "\n"


def _with_declared_actors(doc: _FlowDoc, renamed: Mapping[str, str]) -> _FlowDoc:
    """``doc`` declaring the actors it uses, renamed ones by their new name.

    The engine's own actors come first, in :class:`Actor` order, as the built-in flows declare
    them (so an unchanged flow keeps its fingerprint); a flow's own follow in order of first use.
    """

    def current(actors: list[str]) -> list[str]:
        return [renamed.get(actor, actor) for actor in actors]

    transitions = [t.model_copy(update={"actors": current(t.actors)}) for t in doc.transitions]
    settled_by = current(doc.settled_by)
    used = dict.fromkeys([actor for t in transitions for actor in t.actors] + sorted(settled_by))
    return doc.model_copy(
        update={
            "actors": sorted(
                used, key=lambda actor: _ENGINE_ACTORS.get(actor, len(_ENGINE_ACTORS))
            ),
            "settled_by": settled_by,
            "transitions": transitions,
        }
    )


def _state(doc: _StateDoc) -> StateSpec:
    return StateSpec(
        name=doc.name,
        kind=doc.kind,
        final=doc.final,
        settlement=doc.settlement,
        deadline=None if doc.deadline is None else _deadline(doc.deadline),
        description=doc.description,
    )


def _deadline(doc: _DeadlineDoc) -> Deadline:
    cap = doc.backoff_cap_seconds
    give_up = None
    if doc.give_up is not None:
        give_up = GiveUp(
            after=timedelta(seconds=doc.give_up.after_seconds),
            event=doc.give_up.event,
            per_wallet=_durations(doc.give_up.per_wallet),
        )
    return Deadline(
        after=timedelta(seconds=doc.after_seconds),
        on_expiry=doc.on_expiry,
        per_wallet=_durations(doc.per_wallet),
        backoff_cap=None if cap is None else timedelta(seconds=cap),
        give_up=give_up,
    )


def _durations(seconds: Mapping[str, float]) -> dict[str, timedelta]:
    return {wallet: timedelta(seconds=value) for wallet, value in seconds.items()}


def _transition(doc: _TransitionDoc, guards: Mapping[str, Guard]) -> TransitionSpec:
    return TransitionSpec(
        event=doc.event,
        sources=frozenset(doc.sources),
        dest=doc.dest,
        actors=frozenset(doc.actors),
        guard=guards[doc.guard] if doc.guard else None,
        reversal=doc.reversal,
        follow_up=doc.follow_up,
        binds=tuple(doc.binds),
        description=doc.description,
    )
