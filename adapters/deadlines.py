"""What the timer does when a stored deadline passes.

Every non-final state declares a deadline and the event the timer fires then; the deadline is
stored, indexed, on the instance row, so one query finds everything due and nothing is kept in
memory. A due status check asks NICEPAY (the inquiry's answer is the event); any other deadline
event is fired as the timer. Keys are per version, so two runners that meet on one instance
apply its deadline once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from adapters.service import PaymentService
from adapters.status import CHECK_STATUS
from fsm.definition import Actor
from fsm.errors import ProviderError, TransitionNotAllowed
from fsm.model import Instance

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeadlineRun:
    """What one due instance became."""

    instance_id: str
    event: str
    before: str
    after: str
    error: str | None = None


def run_due(
    service: PaymentService, *, now: datetime | None = None, limit: int = 100
) -> list[DeadlineRun]:
    """Act on every instance whose deadline has passed at ``now`` (earliest first).

    A failed inquiry is reported in the run's ``error`` and leaves the instance in its status-check
    state with a fresh deadline, so the next run tries again.
    """
    moment = now or service.engine.clock.now()
    return [
        _expire(service, instance) for instance in service.engine.store.due(moment, limit=limit)
    ]


def _expire(service: PaymentService, instance: Instance) -> DeadlineRun:
    deadline = service.engine.flow(instance.flow).state(instance.state).deadline
    event = deadline.on_expiry if deadline else ""
    error = None
    try:
        if event == CHECK_STATUS and instance.tx_id:
            service.check_status(instance.id, actor=Actor.TIMER)
        elif event:
            service.engine.fire_with_retry(
                instance.id,
                event,
                actor=Actor.TIMER,
                idempotency_key=f"deadline:{instance.version}:{event}",
            )
    except (ProviderError, TransitionNotAllowed) as exc:
        error = f"{type(exc).__name__}: {exc}"
        logger.warning(
            "deadline action failed",
            extra={"instance": instance.id, "event": event, "reason": type(exc).__name__},
        )
    after = service.engine.get(instance.id).state
    return DeadlineRun(instance.id, event, instance.state, after, error)
