"""The engine's log records: each step applied or refused, with ids, states and actors only.

They are logged under ``fsm.engine``, the engine's own name, wherever the code writing them
lives, so an application configures the engine's records in one place. Payloads never appear.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from fsm.errors import FsmError, RejectReason, TransitionError
from fsm.model import Instance, TransitionResult

logger = logging.getLogger("fsm.engine")


def log_clock_behind(instance: Instance, event: str, behind: timedelta) -> None:
    """The clock stepped back behind the instance's last step."""
    logger.warning(
        "clock behind the last step; stamped at the last step's time",
        extra={
            "flow": instance.flow,
            "instance": instance.id,
            "event": event,
            "from": instance.state,
            "to": None,
            "actor": None,
            "reason": f"clock {behind.total_seconds():.6f} s behind",
        },
    )


def log_outcome(flow: str | None, outcome: TransitionResult | FsmError, actor: str) -> None:
    """An applied step at INFO, a refusal at WARNING; other errors are the caller's to report."""
    if isinstance(outcome, TransitionResult):
        _log_applied(flow, outcome)
    elif isinstance(outcome, TransitionError):
        log_refusal(flow, outcome, actor)


def _log_applied(flow: str | None, result: TransitionResult) -> None:
    if not logger.isEnabledFor(logging.INFO):  # spare building the fields on the hot path
        return
    record, instance = result.record, result.instance
    message = "duplicate event absorbed" if result.duplicate else "transition applied"
    logger.info(
        message,
        extra={
            "flow": flow,
            "instance": record.instance_id,
            "payment_id": record.instance_id,
            "reference": instance.reference_no,
            "wallet": instance.wallet,
            "event": record.event,
            "from": record.source,
            "to": record.dest,
            "actor": str(record.actor),
            "reason": "duplicate" if result.duplicate else None,
        },
    )


def log_refusal(flow: str | None, error: TransitionError, actor: str) -> None:
    """An event the engine refused, with why."""
    reason = getattr(error, "reason", RejectReason.KEY_REUSED)
    logger.warning(
        "event refused",
        extra={
            "flow": flow,
            "instance": error.instance_id,
            "payment_id": error.instance_id,
            "event": error.event,
            "from": error.state,
            "to": None,
            "actor": str(actor),
            "reason": str(reason),
        },
    )
