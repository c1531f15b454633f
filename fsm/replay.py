"""Replay: rebuild an instance's state from its log through its flow definition.

Every step is verified: its sequence number, its source against the state reached so far, that
the flow declares the transition for that actor, and the definition fingerprint it was applied
under. No guard and no adapter runs, so a replay is deterministic. The first step that does not
fit is reported as the divergence, with its reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from fsm.clock import require_aware
from fsm.definition import FlowDefinition
from fsm.model import Instance, TransitionRecord


class Verdict(StrEnum):
    """Whether the log agrees with the flow (and with the stored row)."""

    CONSISTENT = "consistent"
    DIVERGED = "diverged"


@dataclass(frozen=True)
class Divergence:
    """The first step the flow does not explain."""

    index: int
    """Position in the replayed history (0-based); ``-1`` when the stored row disagrees."""
    seq: int | None
    reason: str


@dataclass(frozen=True)
class ReplayResult:
    """The state the log leads to, and whether every step of it was valid."""

    flow: str
    state: str
    applied: int
    """Steps replayed before the end, the cut-off, or the divergence."""
    divergence: Divergence | None

    @property
    def verdict(self) -> Verdict:
        """``consistent`` when nothing diverged."""
        return Verdict.CONSISTENT if self.divergence is None else Verdict.DIVERGED


def replay(
    flow: FlowDefinition,
    history: Iterable[TransitionRecord],
    *,
    until_seq: int | None = None,
    until_time: datetime | None = None,
) -> ReplayResult:
    """Fold ``history`` through ``flow``, stopping at the first divergence.

    Args:
        flow: the definition to check the log against.
        history: the instance's records in log order.
        until_seq: stop after the step with this sequence number (the state as of step N).
        until_time: stop before the first step that occurred after this aware time.
    """
    cutoff = None if until_time is None else require_aware(until_time)
    state, applied = flow.initial, 0
    for index, record in enumerate(history):
        if until_seq is not None and record.seq > until_seq:
            break
        if cutoff is not None and record.occurred_at > cutoff:
            break
        reason = _step_problem(flow, state, applied, record)
        if reason is not None:
            return ReplayResult(flow.name, state, applied, Divergence(index, record.seq, reason))
        state, applied = record.dest, applied + 1
    return ReplayResult(flow.name, state, applied, None)


def replay_instance(
    flow: FlowDefinition,
    instance: Instance,
    history: Iterable[TransitionRecord],
    *,
    until_seq: int | None = None,
    until_time: datetime | None = None,
) -> ReplayResult:
    """:func:`replay`, and for a full replay also check the stored row's state and version."""
    result = replay(flow, history, until_seq=until_seq, until_time=until_time)
    if result.divergence or until_seq is not None or until_time is not None:
        return result
    if (result.state, result.applied) != (instance.state, instance.version):
        reason = (
            f"stored row says {instance.state!r} at version {instance.version}, "
            f"the log leads to {result.state!r} at version {result.applied}"
        )
        return ReplayResult(flow.name, result.state, result.applied, Divergence(-1, None, reason))
    return result


def _step_problem(
    flow: FlowDefinition, state: str, applied: int, record: TransitionRecord
) -> str | None:
    if record.seq != applied + 1:
        return f"step {record.seq} follows step {applied}: the log has a gap or a repeat"
    if record.fingerprint != flow.fingerprint:
        return (
            f"step {record.seq} was applied under definition {record.fingerprint}, "
            f"not the current {flow.fingerprint}"
        )
    if record.source != state:
        return f"step {record.seq} leaves {record.source!r}, but the log had reached {state!r}"
    specs = [spec for spec in flow.candidates(state, record.event) if spec.dest == record.dest]
    if not specs:
        return (
            f"step {record.seq}: the flow has no {record.event!r} from {state!r} to {record.dest!r}"
        )
    if not any(record.actor in spec.actors for spec in specs):
        return f"step {record.seq}: actor {record.actor} may not fire {record.event!r}"
    return None
