"""A registration whose answer was lost with the process that sent it: its payment fails."""

from __future__ import annotations

from adapters.reconcile.journal import CallIntent
from adapters.reconcile.status import StatusChecks
from fsm.definition import Actor
from fsm.errors import TransitionNotAllowed
from fsm.flows import PaymentEvent, PaymentState
from fsm.model import Instance


def fail_lost_registration(
    service: StatusChecks, intent: CallIntent, payment: Instance
) -> tuple[str, Instance]:
    """Fail a payment whose registration's answer was lost; what became of it, and the payment."""
    if payment.state != PaymentState.REGISTRATION_SENT:
        return f"registration already ended in {payment.state}", payment
    payload = {
        "error": "AnswerLost",
        "referenceNo": intent.reference_no,
        "detail": "the registration's answer was lost with the process that sent it; without "
        "its tXid the transaction can never be paid, so it is abandoned",
    }
    try:
        result = service.engine.fire_with_retry(
            intent.instance_id,
            PaymentEvent.FAIL_REGISTRATION,
            actor=Actor.TIMER,
            idempotency_key=f"intent:{intent.id}",
            payload=payload,
        )
    except TransitionNotAllowed:  # recorded by the engine; the payment moved on meanwhile
        return "registration moved on", service.engine.get(intent.instance_id)
    return "registration answer lost: failed", result.instance


__all__ = ["fail_lost_registration"]
