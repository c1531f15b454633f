"""Replay: rebuild an instance's state from its log through its flow definition.

Every step is verified against the flow version it ran under (the version logged with it): its
sequence number, its source against the state reached so far, that that version declares the
transition for that actor, and that the step's fingerprint is that version's. A step may change
the version only as a migration step: an operator's ``migrate_version`` to the next version,
to the state the declared migration maps the current one to. A log written under version 1
stays ``consistent`` after version 2 ships. No guard and no adapter runs, so a replay is
deterministic. The first step that does not fit is reported as the divergence, with its
reason. A step whose stored payload cannot be read back still counts (a replay needs no
payload), and is named in ``damaged``.

Replay checks that the history is valid; the audit chain (:mod:`fsm.chain`) checks that it is
the history that was written. Where a store's chain is read (:func:`verify_stored`, or a verdict
given to :func:`replay_instance`), an edited history is ``tampered`` whatever the fold says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from itertools import groupby
from operator import attrgetter, itemgetter
from typing import Any, Protocol

from fsm._payload import UnreadablePayload
from fsm._stored_row import row_problem
from fsm.chain.content import LINK_FIELDS
from fsm.chain.link import Chain
from fsm.chain.verify import ChainedRows, ChainStatus, ChainVerdict, verify_chain
from fsm.clock import require_aware
from fsm.definition import MIGRATE_EVENT, Actor, FlowDefinition, FlowVersions
from fsm.model import Instance, TransitionRecord
from fsm.store.protocol import StoredStep


class Step(Protocol):
    """What a replay reads of a step: a :class:`TransitionRecord` or a
    :class:`~fsm.store.protocol.StoredStep`."""

    @property
    def seq(self) -> int: ...
    @property
    def event(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def dest(self) -> str: ...
    @property
    def actor(self) -> str: ...
    @property
    def flow_version(self) -> int: ...
    @property
    def fingerprint(self) -> str: ...
    @property
    def occurred_at(self) -> datetime | None: ...
    @property
    def payload(self) -> Mapping[str, Any] | None: ...


class Verdict(StrEnum):
    """Whether the log agrees with the flow (and with the stored row)."""

    CONSISTENT = "consistent"
    DIVERGED = "diverged"
    DAMAGED = "damaged"
    """Every step fits the flow, but a stored row could not be read whole."""
    TAMPERED = "tampered"
    """The stored rows are not the ones written: the audit chain breaks (``chain`` says where)."""


@dataclass(frozen=True)
class Divergence:
    """The first step the flow does not explain."""

    index: int | None
    """Position in the replayed history (0-based); ``None`` when the stored row disagrees."""
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
    damaged: tuple[str, ...] = ()
    """The replayed steps whose stored row could not be read whole, each named with why."""
    versions: tuple[int, ...] = ()
    """The flow versions the replayed steps ran under, in order (more than one: migrated)."""
    chain: ChainVerdict | None = None
    """The audit chain's verdict on the stored rows, when they were checked."""

    @property
    def verdict(self) -> Verdict:
        """``tampered`` when the chain breaks; else ``consistent`` when nothing diverged and
        every row read whole."""
        if self.chain is not None and self.chain.status is ChainStatus.TAMPERED:
            return Verdict.TAMPERED
        if self.divergence is not None:
            return Verdict.DIVERGED
        return Verdict.DAMAGED if self.damaged else Verdict.CONSISTENT


Flow = FlowDefinition | FlowVersions
"""What a log is checked against: one definition, or every released version of a flow."""


def replay(
    flow: Flow,
    history: Iterable[TransitionRecord],
    *,
    until_seq: int | None = None,
    until_time: datetime | None = None,
) -> ReplayResult:
    """Fold ``history`` through ``flow``, stopping at the first divergence.

    Args:
        flow: the definition to check the log against, or the flow's released versions (each
            step is checked against the version it ran under).
        history: the instance's records in log order.
        until_seq: stop after the step with this sequence number (the state as of step N).
        until_time: stop before the first step that occurred after this aware time.
    """
    cutoff = None if until_time is None else require_aware(until_time)
    lineage = FlowVersions.of(flow)
    return _fold(lineage, history, until_seq, cutoff, _ReplayCache(lineage.name))


class StepSource(Protocol):
    """Where :func:`verify_stored` reads logged steps in bulk (:class:`~fsm.SqlStore` and
    :class:`~fsm.MemoryStore` do)."""

    def stored_steps(
        self, instance_ids: Sequence[str], *, with_time: bool = False
    ) -> Iterable[Any]:
        """Rows in :class:`StoredStep` order, by instance then sequence."""
        ...


def verify_stored(
    store: StepSource,
    flow: Flow,
    instance_ids: Iterable[str],
    *,
    until_seq: int | None = None,
    until_time: datetime | None = None,
    require_key: bool = False,
) -> dict[str, ReplayResult]:
    """:func:`replay` of many stored instances at once, reading only the columns it checks.

    The same fold as :func:`replay`, over the rows of a bulk read ordered by instance, instead
    of one ``history`` per instance. A store that keeps the audit chain (``store.chained``:
    :class:`~fsm.SqlStore`, :class:`~fsm.MemoryStore`) is read once for the chained columns,
    and every result carries its chain verdict (``require_key``: a chain only hashed is
    ``unverified``); any other is read through ``store.stored_steps``, without payloads. An id
    with no log replays to the flow's initial state, as :func:`replay` of an empty history does.

    Returns:
        The result for every id, in the order given.
    """
    cutoff = None if until_time is None else require_aware(until_time)
    ids = list(dict.fromkeys(instance_ids))
    lineage = FlowVersions.of(flow)
    cache = _ReplayCache(lineage.name)
    chained = getattr(store, "chained", None)
    if chained is not None:
        checker: Chain = getattr(store, "chain")  # noqa: B009 - a store with chained has one
        return {
            rows.instance_id: _checked(
                lineage, rows, checker, require_key, until_seq, cutoff, cache
            )
            for rows in chained(ids)
        }
    results = dict.fromkeys(ids, cache.result(lineage.latest.initial, 0, ()))
    steps = map(StoredStep._make, store.stored_steps(ids, with_time=cutoff is not None))
    for instance_id, instance_steps in groupby(steps, key=_INSTANCE_ID):
        results[instance_id] = _fold(lineage, instance_steps, until_seq, cutoff, cache)
    return results


_STORED_STEP = itemgetter(*(LINK_FIELDS.index(name) for name in StoredStep._fields))
"""A chained log row's columns in :class:`StoredStep` order."""


def _checked(
    lineage: FlowVersions,
    rows: ChainedRows,
    checker: Chain,
    require_key: bool,
    until_seq: int | None,
    cutoff: datetime | None,
    cache: _ReplayCache,
) -> ReplayResult:
    if rows.instance_row is None and not rows.step_rows:  # nothing stored: nothing to check
        return cache.result(lineage.latest.initial, 0, ())
    verdict = verify_chain(checker, *rows, require_key=require_key)
    steps = (StoredStep._make(_STORED_STEP(row)) for row in rows.step_rows)
    if cutoff is not None:  # a time a hand edit left unreadable is not compared
        steps = (_with_time(step) for step in steps)
    result = _fold(lineage, steps, until_seq, cutoff, cache)
    return replace(result, chain=verdict)


_INSTANCE_ID = attrgetter("instance_id")


class _ReplayCache:
    """One result per (state, steps, versions): consistent replays that end alike share one."""

    def __init__(self, flow: str) -> None:
        self._flow = flow
        self._results: dict[tuple[str, int, tuple[int, ...]], ReplayResult] = {}

    def result(self, state: str, applied: int, versions: tuple[int, ...]) -> ReplayResult:
        key = (state, applied, versions)
        result = self._results.get(key)
        if result is None:
            result = ReplayResult(self._flow, state, applied, None, versions=versions)
            self._results[key] = result
        return result


def _with_time(step: StoredStep) -> StoredStep:
    return step if isinstance(step.occurred_at, datetime) else step._replace(occurred_at=None)


def replay_instance(
    flow: Flow,
    instance: Instance,
    history: Iterable[TransitionRecord],
    *,
    until_seq: int | None = None,
    until_time: datetime | None = None,
    chain: ChainVerdict | None = None,
) -> ReplayResult:
    """:func:`replay`, and for a full replay also check the stored row's state and version.

    ``chain``, the audit chain's verdict on the instance's rows (:func:`fsm.chain.verify_chains`),
    is carried in the result, so a tampered history reads ``tampered``.
    """
    result = _replayed_instance(flow, instance, history, until_seq, until_time)
    return result if chain is None else replace(result, chain=chain)


def _replayed_instance(
    flow: Flow,
    instance: Instance,
    history: Iterable[TransitionRecord],
    until_seq: int | None,
    until_time: datetime | None,
) -> ReplayResult:
    """:func:`replay`, and for a full replay also check the stored row's state, step count and
    flow version."""
    lineage = FlowVersions.of(flow)
    result = replay(lineage, history, until_seq=until_seq, until_time=until_time)
    if result.divergence or until_seq is not None or until_time is not None:
        return result
    reason = row_problem(lineage, instance, result.state, result.applied, result.versions)
    if reason is None:
        return result
    divergence = Divergence(None, None, reason)
    return replace(result, divergence=divergence)


def _fold(
    lineage: FlowVersions,
    history: Iterable[Step],
    until_seq: int | None,
    cutoff: datetime | None,
    cache: _ReplayCache,
) -> ReplayResult:
    """The one fold: each step must follow the last, under its version, as that table allows.

    A step that fits (nearly all of them) is checked inline; the first that does not is explained
    by :func:`_step_problem`. A step under another version than the last is first checked by
    :func:`_entered`: only a declared migration step may change the version.
    """
    flow = lineage.latest
    state, applied, version = flow.initial, 0, 0
    steps, fingerprint = flow.table.steps, flow.fingerprint
    damaged: list[str] = []
    versions: list[int] = []
    for index, step in enumerate(history):
        if (until_seq is not None and step.seq > until_seq) or (
            cutoff is not None and step.occurred_at is not None and step.occurred_at > cutoff
        ):
            break
        payload = step.payload
        if isinstance(payload, UnreadablePayload):
            damaged.append(f"step {step.seq}: its stored payload is {payload.problem}")
        if step.flow_version != version:
            entered = _entered(lineage, state if versions else None, version, applied, step)
            if isinstance(entered, str):
                divergence = Divergence(index, step.seq, entered)
                return ReplayResult(
                    lineage.name, state, applied, divergence, tuple(damaged), tuple(versions)
                )
            flow, state, passed = entered
            versions += passed
            version = step.flow_version
            steps, fingerprint = flow.table.steps, flow.fingerprint
            if step.event == MIGRATE_EVENT:  # checked whole by _entered
                state, applied = step.dest, applied + 1
                continue
        moves = steps.get((state, step.event, step.dest))
        if (
            step.seq != applied + 1
            or step.fingerprint != fingerprint
            or step.source != state
            or moves is None
            or step.actor not in moves.actors
        ):
            divergence = Divergence(index, step.seq, _step_problem(flow, state, applied, step))
            return ReplayResult(
                lineage.name, state, applied, divergence, tuple(damaged), tuple(versions)
            )
        state, applied = step.dest, applied + 1
    if damaged:
        return ReplayResult(lineage.name, state, applied, None, tuple(damaged), tuple(versions))
    return cache.result(state, applied, tuple(versions))


def _entered(
    lineage: FlowVersions, state: str | None, version: int, applied: int, step: Step
) -> tuple[FlowDefinition, str, tuple[int, ...]] | str:
    """The version ``step`` runs under, the state it starts from and the versions it adds to
    the replay's, or why it may not run under it.

    The first step enters its version from that version's initial state, or, when it is a
    migration step, from the initial state of the version before. Any later change of version
    must be a declared migration step.
    """
    new = lineage.versions.get(step.flow_version)
    if new is None:
        known = ", ".join(map(str, lineage.versions))
        return (
            f"step {step.seq} ran under version {step.flow_version}, "
            f"which flow {lineage.name} does not have (versions: {known})"
        )
    passed: tuple[int, ...] = (new.version,)
    if state is None:
        old = lineage.versions.get(step.flow_version - 1)
        if step.event != MIGRATE_EVENT or old is None:
            return new, new.initial, passed
        state, version, passed = old.initial, old.version, (old.version, new.version)
    problem = _migration_problem(lineage, state, version, applied, step)
    return (new, state, passed) if problem is None else problem


def _migration_problem(
    lineage: FlowVersions, state: str, version: int, applied: int, step: Step
) -> str | None:
    """Why ``step`` is not the declared migration of an instance in ``state`` on ``version``."""
    moved = f"step {step.seq} moves from version {version} to {step.flow_version}"
    migration = lineage.migrations.get(version)
    if step.event != MIGRATE_EVENT or str(step.actor) != str(Actor.OPERATOR):
        return f"{moved} by {step.event!r} from {step.actor}, not an operator's {MIGRATE_EVENT!r}"
    if migration is None or migration.to_version != step.flow_version:
        return f"{moved}, but no migration between them is declared"
    if step.seq != applied + 1:
        return f"step {step.seq} follows step {applied}: the log has a gap or a repeat"
    if step.source != state or migration.target(state) != step.dest:
        declared = f"{migration.name} takes {state!r} to {migration.target(state)!r}"
        return f"{moved} taking {step.source!r} to {step.dest!r}; {declared}"
    expected = lineage.versions[step.flow_version].fingerprint
    if step.fingerprint != expected:
        return f"{moved} under definition {step.fingerprint}, not that version's {expected}"
    return None


def _step_problem(flow: FlowDefinition, state: str, applied: int, step: Step) -> str:
    """Why ``step`` does not follow ``state`` after ``applied`` steps."""
    if step.seq != applied + 1:
        return f"step {step.seq} follows step {applied}: the log has a gap or a repeat"
    if step.fingerprint != flow.fingerprint:
        return (
            f"step {step.seq} was applied under definition {step.fingerprint}, "
            f"not {flow.name} v{flow.version}'s {flow.fingerprint}"
        )
    if step.source != state:
        return f"step {step.seq} leaves {step.source!r}, but the log had reached {state!r}"
    moves = flow.table.steps.get((state, step.event, step.dest))
    if moves is None:
        return f"step {step.seq}: the flow has no {step.event!r} from {state!r} to {step.dest!r}"
    return f"step {step.seq}: actor {step.actor} may not fire {step.event!r}"
