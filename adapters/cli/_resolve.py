"""``ewallet-fsm resolve``: a person moves a stuck instance by hand, on the record.

The event is fired as the ``operator`` actor with who and why in its payload, and only where
the flow lets an operator fire it from the instance's state; anything else is refused before
anything is recorded. The idempotency key is the version the command saw and the event, so the
same command run twice, or by two people at once, applies once.
"""

from __future__ import annotations

import argparse
from typing import Any

from adapters.cli._arguments import bounded_text
from adapters.cli._catalog import catalog
from adapters.cli._output import default_db, open_existing, write, write_json
from adapters.cli._records import record_json
from fsm.decide import allowed_events
from fsm.definition import Actor
from fsm.engine import Engine
from fsm.errors import InvalidInstanceData, TransitionNotAllowed
from fsm.flows import EVENT_TYPES
from fsm.model import Instance, TransitionResult

MAX_REASON = 500
MAX_NAME = 64


def register(subparsers: Any) -> None:
    """Add the resolve command."""
    resolve = subparsers.add_parser(
        "resolve", help="fire an operator event on an instance, recorded with who and why"
    )
    resolve.add_argument("id", help="instance id")
    resolve.add_argument("--event", required=True, help="an event the flow allows an operator")
    resolve.add_argument(
        "--reason",
        required=True,
        type=bounded_text("--reason", MAX_REASON),
        help="why, for the record",
    )
    resolve.add_argument(
        "--by", required=True, type=bounded_text("--by", MAX_NAME), help="who resolves it"
    )
    resolve.add_argument(
        "--mandate", type=bounded_text("--mandate", 64), help="the AstraPay mandate to attach"
    )
    resolve.add_argument(
        "--tx-id", type=bounded_text("--tx-id", 64), help="the tXid NICEPAY confirmed, to bind"
    )
    resolve.add_argument(
        "--refunded-amount",
        type=bounded_text("--refunded-amount", 24),
        help="a refund's total refunded so far, as NICEPAY reports it (a void: the whole amount)",
    )
    resolve.add_argument("--db", default=default_db(), help="database URL (default: %(default)s)")
    resolve.add_argument("--json", action="store_true", help="print JSON")
    resolve.set_defaults(handler=_resolve)


def resolve(
    engine: Engine,
    instance_id: str,
    event: str,
    *,
    reason: str,
    by: str,
    mandate: str | None = None,
    tx_id: str | None = None,
    refunded_amount: str | None = None,
) -> TransitionResult:
    """Fire ``event`` on the instance as the operator ``by``, for ``reason``.

    Returns:
        The step applied, or (``duplicate``) the one an identical run already applied.

    Raises:
        InstanceNotFound: no such instance.
        TransitionNotAllowed: an operator may not fire ``event`` here (the message lists what an
            operator may fire); nothing was recorded.
        InvalidInstanceData: the event needs a field (mandate, tXid, refunded total) not given,
            or was given one it does not take; nothing was recorded.
    """
    instance = engine.get(instance_id)
    # Decided on the snapshot just read, so that a refusal names the state it was decided in
    # even when another operator moves the payment meanwhile. A refund request is a refund: it
    # goes through ``PaymentService.cancel``, which sends it.
    allowed = tuple(
        name
        for name in allowed_events(engine.flow_of(instance), instance, Actor.OPERATOR)
        if name != "request_refund"
    )
    if event not in allowed:
        may = ", ".join(allowed) or "nothing"
        raise TransitionNotAllowed(
            instance.id, instance.state, event, detail=f"an operator may fire here: {may}"
        )
    binds = _binds(engine, instance, event)
    if event == "void_payment" and refunded_amount is None and "refunded_amount" in binds:
        refunded_amount = instance.amount  # a void gives the whole amount back
    given = {"mandate": mandate, "tx_id": tx_id, "refunded_amount": refunded_amount}
    _check_binds(instance, event, binds, given)
    if refunded_amount is not None:
        _check_refunded_total(instance, refunded_amount)
    payload = {"operator": by, "reason": reason}
    payload.update({name: value for name, value in given.items() if value is not None})
    return engine.fire_with_retry(
        instance.id,
        event,
        actor=Actor.OPERATOR,
        idempotency_key=f"resolve:v{instance.version}:{event}",
        payload=payload,
    )


_OPTION = {"mandate": "--mandate", "tx_id": "--tx-id", "refunded_amount": "--refunded-amount"}


def _check_refunded_total(instance: Instance, total: str) -> None:
    """Refuse a refunded total that is not digits, exceeds the amount, or lowers the stored one."""
    paid, before = int(instance.amount or 0), int(instance.refunded_amount or 0)
    if not total.isdigit() or not before <= int(total) <= paid:
        raise InvalidInstanceData(
            f"--refunded-amount: {total!r} is not a whole amount from {before} to {paid}"
        )


def _binds(engine: Engine, instance: Instance, event: str) -> set[str]:
    """The instance fields ``event`` stores when an operator fires it from here."""
    specs = engine.flow_of(instance).candidates(instance.state, event)
    return {name for spec in specs if Actor.OPERATOR in spec.actors for name in spec.binds}


def _check_binds(
    instance: Instance, event: str, binds: set[str], given: dict[str, str | None]
) -> None:
    """Refuse a field the event does not store, or one it needs that nobody gives."""
    for name, option in _OPTION.items():
        if given.get(name) is not None and name not in binds:
            raise InvalidInstanceData(f"{option}: {event!r} does not store it")
    missing = sorted(name for name in binds if not given.get(name) and not getattr(instance, name))
    if missing:
        options = ", ".join(_OPTION.get(name, name) for name in missing)
        raise InvalidInstanceData(f"{event!r} needs {options}")


def _resolve(args: argparse.Namespace) -> int:
    with open_existing(args.db) as store:
        result = resolve(
            Engine(store, flows=catalog(), event_types=EVENT_TYPES),
            args.id,
            args.event,
            reason=args.reason,
            by=args.by,
            mandate=args.mandate,
            tx_id=args.tx_id,
            refunded_amount=args.refunded_amount,
        )
    record = result.record
    if args.json:
        write_json(
            {
                "instance": record.instance_id,
                "applied": result.applied,
                "state": record.dest,
                "transition": record_json(record),
            }
        )
    elif result.duplicate:
        write(
            f"{record.instance_id}: {record.event} was already applied as step {record.seq} "
            f"({record.source} -> {record.dest}); nothing changed"
        )
    else:
        write(
            f"{record.instance_id}: {record.event} applied as step {record.seq} "
            f"({record.source} -> {record.dest}) by {args.by}: {args.reason}"
        )
    return 0
