"""A worker for the outbox crash test: a process that SIGKILLs itself at a chosen point.

The test spawns :func:`crash_at` in a fresh interpreter (``spawn`` imports this module by name).
The child drives its own payment (its id is the point's name) on the shared database and kills
itself with ``SIGKILL``: no ``finally`` block, rollback or atexit handler runs.

- ``before_commit``: the step into ``paid`` and its event are written in their transaction,
  whose commit is never sent;
- ``after_commit``: that step committed, and no relay ever ran;
- ``mid_delivery``: the payment is paid and confirmed, and a relay handed its first event to the
  sink (which wrote its id to a file) but never recorded the delivery.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any, NoReturn

from adapters.events import CallableSink, Relay
from fsm import Actor, Engine, Listeners, SqlStore
from fsm._tap import TappedUnit
from fsm.events import Event
from fsm.flows import EVENT_TYPES, FLOWS

STEPS = (
    ("send_registration", Actor.MERCHANT, None),
    ("accept_registration", Actor.PROVIDER_RESPONSE, {"tx_id": "TX", "reference_no": "R"}),
    ("request_payment", Actor.MERCHANT, None),
    ("push_to_app", Actor.PROVIDER_RESPONSE, None),
    ("check_status", Actor.TIMER, None),
    ("confirm_payment", Actor.STATUS_INQUIRY, None),
    ("confirm_order", Actor.MERCHANT, None),
)
POINTS = ("before_commit", "after_commit", "mid_delivery")


def die() -> NoReturn:
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


class DyingUnit(TappedUnit):
    """A unit that dies instead of committing once it has applied a step into ``paid``."""

    __slots__ = ()

    def __exit__(self, *exc: Any) -> None:
        if exc[1] is None and any(r.record.dest == "paid" for r, _ in self._applied):
            die()
        super().__exit__(*exc)


def crash_at(url: str, point: str, delivered_file: str) -> None:
    """Drive the payment called ``point`` and die at that point."""
    store = SqlStore(url)
    if point == "before_commit":
        plain = store.unit
        store.unit = lambda: DyingUnit(plain(), {}, Listeners())  # type: ignore[method-assign,assignment,return-value]
    engine = Engine(store, flows=FLOWS, event_types=EVENT_TYPES)
    engine.start("ewallet_payment", instance_id=point, wallet="ovo", amount=5000)
    last = "confirm_payment" if point != "mid_delivery" else "confirm_order"
    for event, actor, payload in STEPS:
        bound = None if payload is None else {**payload, "reference_no": point}
        engine.fire(point, event, actor=actor, idempotency_key=event, payload=bound)
        if event == last:
            break
    if point == "after_commit":
        die()

    def hand_over_then_die(event: Event) -> None:
        with Path(delivered_file).open("a") as handed:
            handed.write(event.id + "\n")
            handed.flush()
            os.fsync(handed.fileno())
        die()

    Relay(store, CallableSink(hand_over_then_die)).run_once()
    raise AssertionError("the relay should have died")
