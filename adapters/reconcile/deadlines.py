"""What the timer does when a stored deadline passes.

Every non-final state declares a deadline and the event the timer fires then; the deadline is
stored, indexed, on the instance row, so one query finds everything due and nothing is kept in
memory. A due status check asks NICEPAY (the inquiry's answer is the event); any other deadline
event is fired as the timer. A deadline that gives up (a payment past its window and grace) first
asks NICEPAY one last time and, if the payment is still not settled, fires its give-up event
(``flag_for_review``). Each due instance is claimed first (:mod:`fsm.store.leases`), so
reconcilers on several replicas never work on one instance at the same time, and keys are per
version, so even a runner whose claim lapsed mid-way applies a deadline once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from adapters.errors import ProviderError
from adapters.reconcile.intents import INTENT_GRACE
from adapters.reconcile.status import CHECK_STATUS, StatusChecks
from fsm.definition import Actor
from fsm.engine import Engine
from fsm.errors import TransitionNotAllowed
from fsm.model import Instance
from fsm.store.leases import claim_owner

logger = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(minutes=2)
"""How long a claim holds: longer than any one instance's work (an inquiry with its retries)."""


@dataclass(frozen=True)
class DeadlineRun:
    """What one due instance became."""

    instance_id: str
    event: str
    before: str
    after: str
    error: str | None = None


def run_due(
    service: StatusChecks,
    *,
    now: datetime | None = None,
    limit: int = 100,
    owner: str | None = None,
    lease: timedelta = DEFAULT_LEASE,
    grace: timedelta = INTENT_GRACE,
) -> list[DeadlineRun]:
    """Act on every instance whose deadline has passed at ``now`` (earliest first).

    Only instances no other reconciler has claimed are taken; each is claimed for ``owner``
    (a fresh :func:`~fsm.store.leases.claim_owner` when omitted) and released once acted on.
    An instance with a NICEPAY call still unanswered within ``grace`` is left to that call (an
    older one belongs to the reconciler's repair, which runs first). Each instance's claim is
    renewed right before it is acted on, so one whose lease lapsed while earlier ones took long
    is left to whoever took it over. A failed inquiry is reported in the run's ``error`` and
    leaves the instance in its status-check state with a fresh deadline, so the next run tries
    again. An instance nobody can act on (its flow or state is unknown: see :func:`unfit`) is
    reported, skipped, and keeps its claim until the lease
    runs out, so it neither stops the pass nor takes a place in every pass after it.
    """
    leases = service.leases
    moment = now or service.engine.clock.now()
    owner = owner or claim_owner()
    runs = []
    for instance in leases.claim_due(moment, owner=owner, lease=lease, limit=limit):
        problem = unfit(service.engine, instance)
        if problem is not None:
            error = report_skipped(instance, problem)
            runs.append(DeadlineRun(instance.id, "", instance.state, instance.state, error))
            continue
        try:
            # The pass may run at a given ``now`` (tests, a catch-up); real time moves on from it.
            renew_at = max(moment, service.engine.clock.now())
            renewed = leases.claim(instance.id, owner=owner, now=renew_at, lease=lease)
            if renewed and not _call_under_way(service, instance.id, moment - grace):
                runs.append(_expire(service, instance, moment))
        finally:
            leases.release([instance.id], owner=owner)
    return runs


def unfit(engine: Engine, instance: Instance) -> str | None:
    """Why no event can be fired at ``instance`` (a damaged row), or ``None`` when one can."""
    if instance.flow not in engine.flows:
        return f"flow {instance.flow!r} is not one this engine runs"
    flow = engine.catalog.lineage(instance.flow).versions.get(instance.flow_version)
    if flow is None:
        return f"flow {instance.flow} has no version {instance.flow_version} in this engine"
    if instance.state not in flow.state_map:
        return f"state {instance.state!r} is not a state of {flow.name}"
    return None


def report_skipped(instance: Instance, problem: str) -> str:
    """Log an instance the reconciler leaves alone, for a person to look at; the error to show."""
    logger.warning(
        "instance skipped",
        extra={"instance": instance.id, "flow": instance.flow, "reason": problem},
    )
    return f"skipped: {problem}"


def _call_under_way(service: StatusChecks, instance_id: str, since: datetime) -> bool:
    """Whether a NICEPAY call for the instance, recorded after ``since``, has no answer yet.

    Its answer decides what the instance becomes; a timer firing first would guess (fail a
    registration that went through, confirm an order whose cancel is under way).
    """
    open_calls = service.calls.still_open(instance_id=instance_id)
    return any(intent.recorded_at > since for intent in open_calls)


def _expire(service: StatusChecks, instance: Instance, now: datetime) -> DeadlineRun:
    deadline = service.engine.flow_of(instance).state(instance.state).deadline
    event = deadline.event_at(instance.wallet, now - instance.created_at) if deadline else ""
    error = None
    try:
        if deadline and event != deadline.on_expiry:
            after = _give_up(service, instance, event)
        elif event == CHECK_STATUS:  # without a tXid, the check asks about the recorded hints
            after = service.check_status(instance.id, actor=Actor.TIMER)
        elif event:
            after = _fire_timer(service, instance, event)
        else:
            after = service.engine.get(instance.id)
    except (ProviderError, TransitionNotAllowed) as exc:
        error = f"{type(exc).__name__}: {exc}"
        logger.warning(
            "deadline action failed",
            extra={"instance": instance.id, "event": event, "reason": type(exc).__name__},
        )
        after = service.engine.get(instance.id)
    return DeadlineRun(instance.id, event, instance.state, after.state, error)


def _fire_timer(service: StatusChecks, instance: Instance, event: str) -> Instance:
    """Fire the deadline's ``event``, once per version of the instance; the instance it left."""
    return service.engine.fire_with_retry(
        instance.id,
        event,
        actor=Actor.TIMER,
        idempotency_key=f"deadline:{instance.version}:{event}",
    ).instance


def _give_up(service: StatusChecks, instance: Instance, event: str) -> Instance:
    """One last status check (reference §14: at expiry plus grace), then ``event`` if unsettled."""
    try:
        instance = service.check_status(instance.id, actor=Actor.TIMER)
    except ProviderError as exc:  # a check that fails is one more reason for a person to look
        logger.warning(
            "last status check failed",
            extra={"instance": instance.id, "event": event, "reason": type(exc).__name__},
        )
        instance = service.engine.get(instance.id)
    if service.engine.flow_of(instance).state(instance.state).kind.settled:
        return instance
    return _fire_timer(service, instance, event)
