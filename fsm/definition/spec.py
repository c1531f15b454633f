"""The parts a flow is made of: actors, states, deadlines, guards and transitions.

Each is a frozen value whose enum members are normalised to the plain strings stored, so a flow
written with enums and one loaded from JSON compare equal. :class:`~fsm.definition.FlowDefinition`
puts them together and validates the whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from fsm.model import Instance


class Actor(StrEnum):
    """Who fires an event: the actors the engine knows by name, as a provider's client sees them.

    A flow declares the actors it uses (:attr:`FlowDefinition.actors`), these or its own names,
    and each transition names the declared actors allowed to fire it.
    """

    MERCHANT = "merchant"
    """Our own call: the merchant's service acting on its own decision."""
    PROVIDER_RESPONSE = "provider_response"
    """The provider's synchronous answer to one of our API calls."""
    BROWSER_CALLBACK = "browser_callback"
    """The customer's browser returning from the provider: unauthenticated, a hint only."""
    PROVIDER_NOTIFICATION = "provider_notification"
    """A verified server-to-server notification: it proves contact, not the status."""
    STATUS_INQUIRY = "status_inquiry"
    """The result of a status inquiry: the only automatic source of a settlement."""
    TIMER = "timer"
    """A stored deadline passed."""
    OPERATOR = "operator"
    """A person acting by hand, e.g. on-call repairing a stuck payment."""


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

MIGRATE_EVENT = "migrate_version"
"""The event of a logged migration step: the only step that changes an instance's flow version,
so no flow may declare an event of that name."""

DEFAULT_SETTLED_BY = frozenset({str(Actor.STATUS_INQUIRY), str(Actor.OPERATOR)})
"""Who may settle when a flow does not say: a status inquiry's result or an operator."""


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
        set_field(self, "event", str(self.event))
        set_field(self, "per_wallet", _by_wallet(self.per_wallet))

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
        set_field(self, "on_expiry", str(self.on_expiry))
        set_field(self, "per_wallet", _by_wallet(self.per_wallet))

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
        set_field(self, "name", str(self.name))
        set_field(self, "kind", StateKind(self.kind))


@dataclass(frozen=True)
class GuardContext:
    """What a guard sees: the instance as loaded, who fires, and the event's payload."""

    instance: Instance
    actor: str
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
    actors: frozenset[str]
    """The names of the actors allowed to fire it; each must be one the flow declares."""
    guard: Guard | None = None
    reversal: bool = False
    """A declared reversal (void, refund, unlink): it leaves a final state and moves money."""
    follow_up: bool = False
    """A step recorded once the outcome is final, e.g. the merchant telling the customer: it
    leaves a final state for a final state of the same outcome, moves no money, and is never
    fired by the timer (a follow-up nobody took is reported, never taken on someone's behalf)."""
    binds: tuple[str, ...] = ()
    """Instance fields (``tx_id``, ``mandate``, ``reference_no``, ``refunded_amount``) set from
    the payload; ``refunded_amount`` only from a digit string.

    After the transition each is known: the payload must carry it unless the instance already has
    it, and a value carried is stored.
    """
    description: str = ""

    def __post_init__(self) -> None:
        set_field(self, "event", str(self.event))
        set_field(self, "sources", frozenset(str(source) for source in self.sources))
        set_field(self, "dest", str(self.dest))
        set_field(self, "actors", frozenset(str(actor) for actor in self.actors))
        set_field(self, "binds", tuple(str(name) for name in self.binds))


def set_field(obj: object, name: str, value: object) -> None:
    """Normalise a field of a frozen dataclass: enum members become the plain strings stored."""
    object.__setattr__(obj, name, value)


def transition(
    event: str,
    sources: str | Iterable[str],
    dest: str,
    *actors: str,
    guard: Guard | None = None,
    reversal: bool = False,
    follow_up: bool = False,
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
        follow_up=follow_up,
        binds=binds,
        description=description,
    )
