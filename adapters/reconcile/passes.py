"""What a reconciler's pass did: each repair, each deadline, and their count."""

from __future__ import annotations

from dataclasses import dataclass

from adapters.reconcile.deadlines import DeadlineRun
from adapters.telemetry import ServiceTelemetry


@dataclass(frozen=True)
class Repair:
    """What one abandoned call's payment became."""

    instance_id: str
    call: str
    before: str
    after: str
    outcome: str
    error: str | None = None
    retryable: bool = False
    """Whether its error may pass by itself (an outage): the next pass asks again."""


@dataclass(frozen=True)
class ReconcilePass:
    """One reconciler pass: the repaired calls, then the passed deadlines acted on."""

    repairs: list[Repair]
    deadlines: list[DeadlineRun]

    @property
    def failed(self) -> bool:
        """Whether any repair or deadline action ended in an error."""
        return any(r.error for r in self.repairs) or any(r.error for r in self.deadlines)


def count_pass(telemetry: ServiceTelemetry, done: ReconcilePass) -> None:
    """Count each repair and deadline of a pass by its outcome (a repair's outcome up to any
    ``:``, so that no payment's detail becomes a label)."""
    for repair in done.repairs:
        telemetry.reconciled("repair", "error" if repair.error else repair.outcome.split(":")[0])
    for run in done.deadlines:
        telemetry.reconciled("deadline", "error" if run.error else run.event or "skipped")


__all__ = ["ReconcilePass", "Repair", "count_pass"]
