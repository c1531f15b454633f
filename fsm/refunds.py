"""Refund requests as a payment's log records them: who asked for how much, and why.

A flow records a refund request as a self-loop step, :data:`REQUEST_REFUND`, whose payload holds
the amount, the request's id, the reason and who asked; the money moves later, when a void or
refund is applied and binds the instance's refunded total. History, the audit report and the
path diagram read both from here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fsm.model import Instance, TransitionRecord

REQUEST_REFUND = "request_refund"
"""The event a flow records a refund request under."""


@dataclass(frozen=True, slots=True)
class RefundRequestStep:
    """One refund request from the log."""

    seq: int
    occurred_at: datetime
    actor: str
    request_id: str
    amount: str
    reason: str
    requested_by: str


def refund_requests(history: Iterable[TransitionRecord]) -> list[RefundRequestStep]:
    """The refund requests among ``history``'s steps, in log order."""
    return [
        RefundRequestStep(
            seq=record.seq,
            occurred_at=record.occurred_at,
            actor=record.actor,
            request_id=_text(record.payload.get("request_id")),
            amount=_text(record.payload.get("amount")),
            reason=_text(record.payload.get("reason")),
            requested_by=_text(record.payload.get("requested_by")),
        )
        for record in history
        if record.event == REQUEST_REFUND
    ]


def refunded_total(instance: Instance) -> str:
    """The refunded total against the amount, e.g. ``50000 of 150000 IDR refunded``."""
    paid = f" of {instance.amount} {instance.currency}" if instance.amount else ""
    return f"{instance.refunded_amount or '0'}{paid} refunded"


def _text(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


__all__ = ["REQUEST_REFUND", "RefundRequestStep", "refund_requests", "refunded_total"]
