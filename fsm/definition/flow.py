"""Flow definitions: a lifecycle as frozen data, validated in full when it is built.

A :class:`FlowDefinition` is states, transitions and deadlines. Building one runs every check in
:mod:`fsm.definition.checks` and raises :class:`~fsm.FlowDefinitionError` naming each problem, so
a broken lifecycle fails at import time instead of in production. Guards may refuse a transition
but never choose where it goes: at most one unguarded transition exists per ``(state, event)``,
which keeps replay deterministic.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from fsm.errors import FlowDefinitionError

if TYPE_CHECKING:
    from fsm.model import Instance


class Actor(StrEnum):
    """Who fires an event. Each transition names the actors allowed to fire it."""

    MERCHANT = "merchant"
    """Our own call: the merchant's service acting on its own decision."""
    NICEPAY_RESPONSE = "nicepay_response"
    """The synchronous answer to one of our API calls."""
    BROWSER_CALLBACK = "browser_callback"
    """The customer's browser returning to ``callBackUrl``: unauthenticated, a hint only."""
    NICEPAY_NOTIFICATION = "nicepay_notification"
    """A verified server-to-server notification: it proves contact, not the status."""
    STATUS_INQUIRY = "status_inquiry"
    """The result of a status inquiry: the only automatic source of a settlement."""
    TIMER = "timer"
    """A stored deadline passed."""
    OPERATOR = "operator"
    """A person acting by hand, e.g. on-call repairing a stuck payment."""
    CUSTOMER = "customer"
    """The payer acting on a payment page (used by NICEPAY's own view of a transaction)."""
    WALLET_PARTNER = "wallet_partner"
    """The wallet's answer to NICEPAY (used by NICEPAY's own view of a transaction)."""


class StateKind(StrEnum):
    """What a state means to a reader; diagrams style states by kind."""

    START = "start"
    IN_PROGRESS = "in_progress"
    WAITING_CUSTOMER = "waiting_customer"
    WAITING_PROVIDER = "waiting_provider"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REVERSED = "reversed"
    REVIEW = "review"
    """Waiting for a person: not settled, no money moved, no automatic way forward."""

    @property
    def settled(self) -> bool:
        """Whether the lifecycle's outcome is decided in a state of this kind."""
        return self in _SETTLED_KINDS


_SETTLED_KINDS = frozenset({StateKind.SUCCEEDED, StateKind.FAILED, StateKind.REVERSED})

BINDABLE_FIELDS = frozenset({"tx_id", "mandate", "reference_no", "refunded_amount"})
"""Instance fields a transition may set from its payload (see :attr:`TransitionSpec.binds`)."""
AMOUNT_FIELDS = frozenset({"refunded_amount"})
"""Bindable fields that hold money: only an exact digit string is bound."""

DEFAULT_SETTLED_BY = frozenset({Actor.STATUS_INQUIRY, Actor.OPERATOR})


@dataclass(frozen=True)
class GiveUp:
    """When a state's timer stops repeating its own event: once the instance is ``after`` old.

    The age counts from the instance's start, so it bounds the whole wait however often the
    instance went round its states; the timer then fires ``event`` instead.
    """

    after: timedelta
    event: str
    per_wallet: Mapping[str, timedelta] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _set(self, "event", str(self.event))
        _set(self, "per_wallet", _by_wallet(self.per_wallet))

    def for_wallet(self, wallet: str | None) -> timedelta:
        """The age at which an instance of ``wallet`` gives up."""
        return _for_wallet(self.per_wallet, wallet, self.after)


@dataclass(frozen=True)
class Deadline:
    """How long an instance may stay in a state, and which event the timer fires after that."""

    after: timedelta
    on_expiry: str
    per_wallet: Mapping[str, timedelta] = field(default_factory=dict)
    backoff_cap: timedelta | None = None
    """When set, the wait grows with the instance's age, from ``after`` up to this cap.

    Each wait is the instance's age (at least ``after``, at most the cap), so a state the
    instance keeps re-entering is checked at doubling intervals from the instance's start.
    """
    give_up: GiveUp | None = None
    """When set, the age past which the timer fires ``give_up.event`` instead of ``on_expiry``."""

    def __post_init__(self) -> None:
        _set(self, "on_expiry", str(self.on_expiry))
        _set(self, "per_wallet", _by_wallet(self.per_wallet))

    def for_wallet(self, wallet: str | None) -> timedelta:
        """The deadline that applies to an instance of ``wallet``."""
        return _for_wallet(self.per_wallet, wallet, self.after)

    def due_at(self, wallet: str | None, now: datetime, started_at: datetime) -> datetime:
        """When the deadline passes for an instance of ``wallet`` started at ``started_at``.

        A deadline that gives up is never stored past the moment it gives up, so the timer acts
        right then.
        """
        wait = self.for_wallet(wallet)
        if self.backoff_cap is not None:
            wait = min(self.backoff_cap, max(wait, now - started_at))
        due = now + wait
        if self.give_up is not None:
            giving_up = started_at + self.give_up.for_wallet(wallet)
            if now < giving_up:
                due = min(due, giving_up)
        return due

    def event_at(self, wallet: str | None, age: timedelta) -> str:
        """The event the timer fires for an instance of ``wallet`` that is ``age`` old."""
        if self.give_up is not None and age >= self.give_up.for_wallet(wallet):
            return self.give_up.event
        return self.on_expiry


def _by_wallet(values: Mapping[str, timedelta]) -> Mapping[str, timedelta]:
    return MappingProxyType({str(k): v for k, v in values.items()})


def _for_wallet(
    values: Mapping[str, timedelta], wallet: str | None, default: timedelta
) -> timedelta:
    return default if wallet is None else values.get(wallet, default)


@dataclass(frozen=True)
class StateSpec:
    """One state of a flow."""

    name: str
    kind: StateKind
    final: bool = False
    settlement: bool = False
    """Entering this state settles money: only the flow's ``settled_by`` actors may do it."""
    deadline: Deadline | None = None
    description: str = ""

    def __post_init__(self) -> None:
        _set(self, "name", str(self.name))
        _set(self, "kind", StateKind(self.kind))


@dataclass(frozen=True)
class GuardContext:
    """What a guard sees: the instance as loaded, who fires, and the event's payload."""

    instance: Instance
    actor: Actor
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class Guard:
    """A named, side-effect-free condition on a transition."""

    name: str
    check: Callable[[GuardContext], bool]
    description: str = ""


@dataclass(frozen=True)
class TransitionSpec:
    """One transition: ``event`` moves an instance from any of ``sources`` to ``dest``."""

    event: str
    sources: frozenset[str]
    dest: str
    actors: frozenset[Actor]
    guard: Guard | None = None
    reversal: bool = False
    """A declared reversal (void, refund, unlink): the only way out of a final state."""
    binds: tuple[str, ...] = ()
    """Instance fields (``tx_id``, ``mandate``, ``reference_no``, ``refunded_amount``) set from
    the payload; ``refunded_amount`` only from a digit string.

    After the transition each is known: the payload must carry it unless the instance already has
    it, and a value carried is stored.
    """
    description: str = ""

    def __post_init__(self) -> None:
        _set(self, "event", str(self.event))
        _set(self, "sources", frozenset(str(source) for source in self.sources))
        _set(self, "dest", str(self.dest))
        _set(self, "actors", frozenset(Actor(actor) for actor in self.actors))
        _set(self, "binds", tuple(str(name) for name in self.binds))


@dataclass(frozen=True)
class FlowDefinition:
    """A lifecycle as data; building one validates it completely."""

    name: str
    states: tuple[StateSpec, ...]
    initial: str
    transitions: tuple[TransitionSpec, ...]
    description: str = ""
    wallets: tuple[str, ...] = ()
    """Wallets an instance of this flow may belong to; empty means any."""
    settled_by: frozenset[Actor] = DEFAULT_SETTLED_BY
    """Actors allowed to enter a settlement state."""

    def __post_init__(self) -> None:
        _set(self, "initial", str(self.initial))
        _set(self, "wallets", tuple(str(wallet) for wallet in self.wallets))
        _set(self, "settled_by", frozenset(Actor(actor) for actor in self.settled_by))
        from fsm.definition.checks import problems_of  # the checks read this module's types

        problems = problems_of(self)
        if problems:
            raise FlowDefinitionError(self.name, problems)

    @cached_property
    def state_map(self) -> Mapping[str, StateSpec]:
        """States by name."""
        return MappingProxyType({state.name: state for state in self.states})

    @cached_property
    def index(self) -> Mapping[tuple[str, str], tuple[TransitionSpec, ...]]:
        """Transitions by ``(source, event)``, in declaration order."""
        table: dict[tuple[str, str], tuple[TransitionSpec, ...]] = {}
        for spec in self.transitions:
            for source in sorted(spec.sources):
                table[source, spec.event] = (*table.get((source, spec.event), ()), spec)
        return MappingProxyType(table)

    @cached_property
    def step_actors(self) -> Mapping[tuple[str, str, str], frozenset[Actor]]:
        """The actors who may take ``event`` from ``source`` to ``dest``, by that triple."""
        table: dict[tuple[str, str, str], frozenset[Actor]] = {}
        for (source, event), specs in self.index.items():
            for spec in specs:
                key = (source, event, spec.dest)
                table[key] = table.get(key, frozenset()) | spec.actors
        return MappingProxyType(table)

    @cached_property
    def events(self) -> tuple[str, ...]:
        """Every event name, in order of first declaration."""
        return tuple(dict.fromkeys(spec.event for spec in self.transitions))

    @cached_property
    def fingerprint(self) -> str:
        """A short hash of what the definition does; prose (descriptions) does not count."""
        data = _without_descriptions(flow_to_dict(self))
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def state(self, name: str) -> StateSpec:
        """The state called ``name`` (``KeyError`` when there is none)."""
        return self.state_map[name]

    def candidates(self, source: str, event: str) -> tuple[TransitionSpec, ...]:
        """The transitions ``event`` may take from ``source``; guarded ones first as declared."""
        return self.index.get((source, event), ())

    def events_from(self, source: str) -> tuple[str, ...]:
        """Events that have at least one transition out of ``source``."""
        return tuple(event for event in self.events if (source, event) in self.index)


def _set(obj: object, name: str, value: object) -> None:
    """Normalise a field of a frozen dataclass: enum members become the plain strings stored."""
    object.__setattr__(obj, name, value)


def flow_to_dict(flow: FlowDefinition) -> dict[str, Any]:
    """The definition as plain JSON-ready data, in a stable order; guards appear by name."""
    return {
        "name": flow.name,
        "description": flow.description,
        "initial": flow.initial,
        "wallets": list(flow.wallets),
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
    return {
        "event": spec.event,
        "sources": sorted(spec.sources),
        "dest": spec.dest,
        "actors": sorted(spec.actors),
        "guard": spec.guard.name if spec.guard else None,
        "reversal": spec.reversal,
        "binds": list(spec.binds),
        "description": spec.description,
    }


def transition(
    event: str,
    sources: str | Iterable[str],
    dest: str,
    *actors: Actor,
    guard: Guard | None = None,
    reversal: bool = False,
    binds: tuple[str, ...] = (),
    description: str = "",
) -> TransitionSpec:
    """Shorthand for a :class:`TransitionSpec`, so a flow reads as a table."""
    source_set = frozenset({sources} if isinstance(sources, str) else sources)
    return TransitionSpec(
        event=event,
        sources=source_set,
        dest=dest,
        actors=frozenset(actors),
        guard=guard,
        reversal=reversal,
        binds=binds,
        description=description,
    )
