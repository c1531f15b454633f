"""The merchant's step after an outcome: it told the customer, and records it.

On ``payment.paid`` (and ``payment.failed``, ``payment.expired``) the merchant's code tells the
customer, then calls :meth:`~adapters.service.PaymentService.confirm_order`; after
``link.linked``, :meth:`~adapters.service.PaymentService.confirm_link`. Each fires its flow's
confirmation event (:data:`fsm.flows.CONFIRMATIONS`) as the merchant, under one key per
instance, so asking again returns the first step marked ``duplicate`` (as it does when an
operator, or a version 1 timer, recorded the confirmation first). Nothing fires it on the
merchant's behalf: an outcome left unconfirmed is reported (:mod:`adapters.reconcile.unconfirmed`).
"""

from __future__ import annotations

from adapters.errors import NotConfirmable
from adapters.wallets.registry import ACCOUNT_LINK, ADAPTERS
from fsm.definition import Actor
from fsm.engine import Engine
from fsm.errors import ActorNotAllowed, InvalidInstanceData, TransitionNotAllowed
from fsm.flows import CONFIRMATIONS
from fsm.model import Instance, TransitionRecord, TransitionResult

PAYMENT_FLOWS = frozenset(adapter.flow for adapter in ADAPTERS.values())
"""The flows whose outcome :meth:`~adapters.service.PaymentService.confirm_order` confirms."""
LINK_FLOWS = frozenset({ACCOUNT_LINK.flow})
"""The flows whose outcome :meth:`~adapters.service.PaymentService.confirm_link` confirms."""
CONFIRM_KEY = "merchant:confirm"
"""The idempotency key of an instance's confirmation: one per instance, so a repeat is a
duplicate whatever happened to the instance since."""


def confirm(
    engine: Engine, instance_id: str, flows: frozenset[str], *, actor: Actor = Actor.MERCHANT
) -> TransitionResult:
    """Record that the outcome of ``instance_id`` (of one of ``flows``) was told to the customer.

    Raises:
        InstanceNotFound: no such instance.
        InvalidInstanceData: the instance is not of one of ``flows``; nothing was recorded.
        NotConfirmable: the instance has no outcome to confirm; nothing was recorded.
        ActorNotAllowed: it has one, but ``actor`` may not confirm it; nothing was recorded.
    """
    instance = engine.get(instance_id)
    if instance.flow not in flows:
        raise InvalidInstanceData(
            f"{instance_id!r} is a {instance.flow}, not one of {sorted(flows)}"
        )
    event = CONFIRMATIONS[instance.flow]
    allowed = _confirming_actors(engine, instance, event)
    if allowed and actor not in allowed:  # the outcome is there, but not for this actor
        raise ActorNotAllowed(
            instance_id, instance.state, event, detail=f"{actor} may not; allowed: {allowed}"
        )
    if not allowed:
        earlier = _confirmation(engine, instance_id, event)
        if earlier is None:
            raise _not_confirmable(instance)
        return TransitionResult(earlier, instance, duplicate=True)
    try:
        return engine.fire_with_retry(
            instance_id, event, actor=actor, idempotency_key=CONFIRM_KEY, payload={}
        )
    except TransitionNotAllowed:  # moved on between the look and the step
        raise _not_confirmable(engine.get(instance_id)) from None


def _confirming_actors(engine: Engine, instance: Instance, event: str) -> list[str]:
    """Who may fire the confirmation in the instance's state: none when it has no outcome."""
    flow = engine.flow_of(instance)
    candidates = flow.candidates(instance.state, event)
    return sorted({str(actor) for spec in candidates for actor in spec.actors})


def _confirmation(engine: Engine, instance_id: str, event: str) -> TransitionRecord | None:
    """The confirmation recorded already, by whoever took it (the merchant, an operator, or a
    version 1 timer): asking again returns it as a duplicate, whatever happened since."""
    return next((step for step in engine.history(instance_id) if step.event == event), None)


def _not_confirmable(instance: Instance) -> NotConfirmable:
    return NotConfirmable(
        instance.id, flow=instance.flow, flow_version=instance.flow_version, state=instance.state
    )


__all__ = ["CONFIRM_KEY", "LINK_FLOWS", "PAYMENT_FLOWS", "confirm"]
