"""Deciding an event from the flow's one table: which transition applies, or why none does.

These are pure functions of the flow, the instance as loaded, the event, the actor and the
payload: no store, no clock, no I/O. :class:`fsm.Engine` loads the instance, asks here, and
records the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

from fsm._engine_log import log_clock_behind
from fsm._inputs import is_amount
from fsm.definition import AMOUNT_FIELDS, FlowDefinition, TransitionSpec
from fsm.errors import (
    ActorNotAllowed,
    GuardRefused,
    IdempotencyKeyReused,
    RejectReason,
    StaleEvent,
    TransitionNotAllowed,
)
from fsm.model import Instance, RejectedEvent, TransitionRecord, TransitionResult

NOTHING_BOUND: Mapping[str, str] = MappingProxyType({})


def decide(
    flow: FlowDefinition,
    instance: Instance,
    event: str,
    actor: str,
    payload: Mapping[str, Any],
) -> TransitionSpec | TransitionNotAllowed:
    """The transition ``event`` takes for ``actor``, or the refusal that says why it takes none.

    The candidates are tried in the machine's order; the first open to ``actor`` whose guard
    passes is taken, and it must find every field it binds in the payload or on the instance.
    """
    moves = flow.table.moves.get((instance.state, event))
    if moves is None:
        return _no_transition(flow, instance, event)
    if actor not in moves.actors:
        return ActorNotAllowed(
            instance.id,
            instance.state,
            event,
            detail=f"{actor} may not; allowed: {sorted(moves.actors)}",
        )
    spec = moves.first_passing(instance, actor, payload)
    if spec is None:
        guards = sorted(s.guard.name for s in moves.specs if s.guard and actor in s.actors)
        return GuardRefused(instance.id, instance.state, event, detail=f"guard {guards}")
    if not spec.binds:
        return spec
    missing = [
        name
        for name in spec.binds
        if not _bindable(name, payload.get(name)) and not getattr(instance, name)
    ]
    if missing:
        return TransitionNotAllowed(
            instance.id,
            instance.state,
            event,
            reason=RejectReason.INVALID_PAYLOAD,
            detail=f"payload lacks {missing}",
        )
    return spec


def allowed_events(flow: FlowDefinition, instance: Instance, actor: str | None) -> tuple[str, ...]:
    """Events some transition would take now (for ``actor``, when given), guards included."""
    allowed = []
    for event in flow.table.events_from(instance.state):
        moves = flow.table.moves[instance.state, event]
        actors = moves.actors if actor is None else moves.actors & {actor}
        if any(moves.first_passing(instance, who, {}) for who in sorted(actors)):
            allowed.append(event)
    return tuple(allowed)


def bound_fields(spec: TransitionSpec, payload: Mapping[str, Any]) -> Mapping[str, str]:
    """The instance fields ``spec`` sets from the payload, where the payload carries them."""
    if not spec.binds:
        return NOTHING_BOUND
    return {name: str(payload[name]) for name in spec.binds if _bindable(name, payload.get(name))}


def step_time(now: datetime, instance: Instance, event: str) -> datetime:
    """``now``, or the instance's last step time when the clock has stepped back behind it.

    A log whose times run backwards would misorder an audit and a replay ``--at``; the deadline
    is still counted from the clock's ``now``, since that is the clock the timer reads.
    """
    last = instance.updated_at
    if now >= last:
        return now
    log_clock_behind(instance, event, last - now)
    return last


def deadline_at(
    flow: FlowDefinition, state: str, wallet: str | None, now: datetime, started_at: datetime
) -> datetime | None:
    """When an instance of ``wallet`` started at ``started_at`` is due to leave ``state``."""
    deadline = flow.state(state).deadline
    return None if deadline is None else deadline.due_at(wallet, now, started_at)


def repeated(
    instance: Instance,
    prior: TransitionRecord,
    event: str,
    actor: str,
    key: str,
    payload: Mapping[str, Any],
    now: datetime,
) -> tuple[TransitionResult | IdempotencyKeyReused, RejectedEvent]:
    """What a key the log already holds answers, and the refused event to note it by.

    The same event gets its first outcome back as a duplicate; another event under the key is
    refused as a reused key.
    """
    outcome: TransitionResult | IdempotencyKeyReused
    if prior.event != event:
        outcome = IdempotencyKeyReused(instance.id, instance.state, event, key, prior.event)
        reason, detail = RejectReason.KEY_REUSED, f"key used for {prior.event!r}"
    else:
        outcome = TransitionResult(prior, instance, duplicate=True)
        reason, detail = RejectReason.DUPLICATE, f"already applied as step {prior.seq}"
    return outcome, refusal(instance, event, actor, key, payload, now, reason, detail)


def refusal(
    instance: Instance,
    event: str,
    actor: str,
    key: str,
    payload: Mapping[str, Any],
    now: datetime,
    reason: RejectReason,
    detail: str,
) -> RejectedEvent:
    """The record of ``event`` refused in the instance's state, for ``reason``."""
    return RejectedEvent(
        instance_id=instance.id,
        event=event,
        state=instance.state,
        version=instance.version,
        actor=actor,
        idempotency_key=key,
        reason=reason,
        detail=detail,
        payload=payload,
        occurred_at=now,
    )


def _no_transition(flow: FlowDefinition, instance: Instance, event: str) -> TransitionNotAllowed:
    """Why the flow has no transition for ``event`` from where the instance is."""
    if event not in flow.events:
        return TransitionNotAllowed(
            instance.id, instance.state, event, reason=RejectReason.UNKNOWN_EVENT
        )
    if flow.state(instance.state).kind.settled:
        return StaleEvent(instance.id, instance.state, event, detail="instance is settled")
    return TransitionNotAllowed(instance.id, instance.state, event)


def _bindable(name: str, value: Any) -> bool:
    """Whether ``value`` may be stored in the instance field ``name``: text of 1 to 64
    characters, and for a money field an exact amount."""
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        return False
    return name not in AMOUNT_FIELDS or is_amount(value)
