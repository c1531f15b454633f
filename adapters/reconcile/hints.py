"""tXid hints: what the customer's browser said a payment's tXid was, until NICEPAY agrees.

AstraPay's payment is a browser submit that NICEPAY answers to the browser only, so the server
may first hear of the payment's tXid from the browser's return, which anybody can forge. Such a
tXid is a hint: it stays in the payload of the recorded return (applied or refused) and is never
bound. Only an inquiry made with it, whose answer agrees with the stored referenceNo and amount,
binds it (:func:`~adapters.reconcile.status.apply_answer`). A status check of a payment without a
tXid asks
about a few hints: the return being handled alone, or else the recorded ones, those asked least
often first and then the most recent. A hint NICEPAY disproved (it refused the inquiry as made
with a tXid it does not know for this referenceNo and amount, or answered about another
transaction) is never asked again, so forged returns cost one inquiry each and cannot crowd a
genuine one out for good.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from adapters.reconcile.intents import Call
from adapters.reconcile.journal import CallJournal
from fsm.definition import Actor
from fsm.engine import Engine
from fsm.errors import RejectReason
from fsm.model import RejectedEvent

HINTS_ASKED = 3
"""At most this many hints are asked about in one status check."""
DISPROVING_CODES = frozenset({"9010", "9751"})
"""Inquiry refusals that say the tXid is not this referenceNo's and amount's (token, parameter)."""
_MAX_TX_ID = 64  # the longest value a transition binds; a tXid is 30


@dataclass(frozen=True)
class _Inquiries:
    """How often each tXid was asked about, and which ones NICEPAY disproved."""

    asked: Counter[str]
    disproved: frozenset[str]


def hints_to_ask(
    engine: Engine,
    calls: CallJournal,
    payment_id: str,
    *,
    given: str | None = None,
    limit: int = HINTS_ASKED,
) -> list[str]:
    """The tXids a status check of the payment, which has none bound, asks about, in order.

    Args:
        engine: the engine the payment is stored in.
        calls: the journal of the inquiries made about it.
        payment_id: the payment.
        given: the tXid of a browser return being handled now: asked alone (each return buys
            at most one inquiry), unless NICEPAY disproved it before.
        limit: the most recorded hints to return.

    Returns:
        ``[given]`` or ``[]`` when ``given`` is set; else up to ``limit`` recorded hints NICEPAY
        has not disproved: those asked before first, then the most recent.
    """
    rejections = engine.rejections(payment_id)
    inquiries = _inquiries(calls, payment_id, rejections)
    if given is not None:
        return [given] if is_tx_id(given) and given not in inquiries.disproved else []
    fresh = [
        tx_id
        for tx_id in recorded_hints(engine, payment_id, rejections)
        if tx_id not in inquiries.disproved
    ]
    # A hint asked before and not disproved failed only for a passing reason (or is pending):
    # it goes first, so forged hints that were never asked cannot push it back for hours.
    # Each forged one is disproved the first time it is asked. Otherwise the most recent first.
    fresh.sort(key=lambda tx_id: inquiries.asked[tx_id] == 0)
    return fresh[:limit]


def recorded_hints(
    engine: Engine, payment_id: str, rejections: Sequence[RejectedEvent] | None = None
) -> list[str]:
    """Distinct tXids the payment's browser returns named, the most recent first.

    Returns refused before they reached the flow (their referenceNo did not match) name no hint.
    """
    refused = engine.rejections(payment_id) if rejections is None else rejections
    named: list[tuple[Any, Any]] = [
        (record.occurred_at, record.payload.get("tXid"))
        for record in engine.history(payment_id)
        if record.actor == Actor.BROWSER_CALLBACK
    ]
    named += [
        (rejected.occurred_at, rejected.payload.get("tXid"))
        for rejected in refused
        if rejected.actor == Actor.BROWSER_CALLBACK
        and rejected.reason is not RejectReason.UNVERIFIED
    ]
    newest_first = reversed(sorted(named, key=lambda item: item[0]))
    return list(dict.fromkeys(tx_id for _, tx_id in newest_first if is_tx_id(tx_id)))


def _inquiries(
    calls: CallJournal, payment_id: str, rejections: Sequence[RejectedEvent]
) -> _Inquiries:
    asked: Counter[str] = Counter()
    disproved = set()
    refusals = {f"refused:{code}" for code in DISPROVING_CODES}
    for intent in calls.of_instance(payment_id):
        if intent.call == Call.INQUIRY and intent.tx_id:
            asked[intent.tx_id] += 1
            if intent.outcome in refusals:
                disproved.add(intent.tx_id)
    # An answer about another referenceNo or amount is recorded as an unverified inquiry result.
    disproved.update(
        str(rejected.payload.get("tXid"))
        for rejected in rejections
        if rejected.actor == Actor.STATUS_INQUIRY and rejected.reason is RejectReason.UNVERIFIED
    )
    return _Inquiries(asked, frozenset(disproved))


def is_tx_id(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= _MAX_TX_ID and value.isprintable()


__all__ = ["DISPROVING_CODES", "HINTS_ASKED", "hints_to_ask", "is_tx_id", "recorded_hints"]
