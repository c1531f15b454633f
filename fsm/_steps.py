"""How the engine writes a step: one unit of work per event, or per batch, or per migrated instance.

Each instance is decided with the definition of the flow version it is pinned to, so an instance
started before a new version shipped keeps the rules it started under. A migration step is the
only write that changes an instance's version; it is logged like any step, by an operator, under
the same compare-and-set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

from fsm._engine_log import log_outcome
from fsm._inputs import CheckedRequest
from fsm._signals import Contention, KeyTaken, ReferenceTaken
from fsm.decide import bound_fields, deadline_at, decide, refusal, repeated, step_time
from fsm.definition import MIGRATE_EVENT, Actor, FlowCatalog, FlowDefinition, FlowMigration
from fsm.errors import (
    ConcurrentTransition,
    FsmError,
    InstanceNotFound,
    ReferenceInUse,
    TransitionError,
    TransitionNotAllowed,
)
from fsm.model import Instance, MigratedInstance, TransitionRecord, TransitionResult
from fsm.store.protocol import Along, Unit
from fsm.telemetry import StepTelemetry

Written = tuple[str, TransitionResult | TransitionError]
"""The flow's name and what became of the event."""


class Units(Protocol):
    """Where steps get their transactions: a store, or the engine's tap on one."""

    def unit(self) -> Unit:
        """A new transaction, begun when its ``with`` block is entered."""
        ...


def flow_of(catalog: FlowCatalog, instance: Instance) -> FlowDefinition:
    """The definition of the version ``instance`` is pinned to."""
    return catalog.version(instance.flow, instance.flow_version)


def transact(
    store: Units,
    catalog: FlowCatalog,
    instance_id: str,
    event: str,
    actor: str,
    key: str,
    payload: Mapping[str, Any],
    now: datetime,
    along: Along | None = None,
) -> Written:
    """One unit for the event, and a second one when the log already holds its key.

    A step the flow allows is applied without looking its key up first: the log's unique
    ``(instance_id, idempotency_key)`` refuses a repeat, the unit rolls back whole, and the
    second unit answers from the logged record (a duplicate, or a reused key). ``along`` runs
    in whichever unit applies the step, so once at most, and only if it commits.
    """
    args = (instance_id, event, actor, key, payload, now)
    try:
        with store.unit() as unit:
            return write(unit, catalog, *args, key_first=False, along=along)
    except KeyTaken:
        with store.unit() as unit:
            return write(unit, catalog, *args, key_first=True, along=along)


def write_batch(
    store: Units,
    catalog: FlowCatalog,
    events: list[CheckedRequest],
    now: datetime,
    telemetry: StepTelemetry | None = None,
) -> list[TransitionResult | FsmError]:
    """Every event of a batch in one unit, its instances locked first (see ``Engine.fire_many``)."""
    written: list[tuple[str | None, TransitionResult | FsmError]] = []
    try:
        with store.unit() as unit:
            unit.lock_all(event.instance_id for event in events)
            for event in events:
                try:
                    written.append(write(unit, catalog, *event, now, key_first=True))
                except InstanceNotFound as missing:
                    written.append((None, missing))
    except (Contention, KeyTaken):  # KeyTaken: a writer that takes no lock logged it first
        first = events[0]
        raise ConcurrentTransition(first.instance_id, None, first.event, None) from None
    for (flow, outcome), event in zip(written, events, strict=True):  # once committed
        log_outcome(flow, outcome, event.actor)
        if telemetry is not None:
            telemetry.outcome(flow, event.event, outcome, None)
    return [outcome for _, outcome in written]


def write(
    unit: Unit,
    catalog: FlowCatalog,
    instance_id: str,
    event: str,
    actor: str,
    key: str,
    payload: Mapping[str, Any],
    now: datetime,
    *,
    key_first: bool,
    along: Along | None = None,
) -> Written:
    """Decide the event with the instance's pinned version and write the outcome in ``unit``;
    ``along`` too when the step is applied (not for a refusal or a repeated key)."""
    instance = unit.load(instance_id)
    flow = flow_of(catalog, instance)
    stamp = step_time(now, instance, event)
    decision = None if key_first else decide(flow, instance, event, actor, payload)
    if decision is None or isinstance(decision, TransitionNotAllowed):
        # a repeated key gets its first outcome, whatever the flow would say now
        prior = unit.find_key(instance_id, key)
        if prior is not None:
            outcome, noted = repeated(instance, prior, event, actor, key, payload, stamp)
            unit.reject(noted)
            return flow.name, outcome
    if decision is None:
        decision = decide(flow, instance, event, actor, payload)
    if isinstance(decision, TransitionNotAllowed):
        rejected = refusal(
            instance, event, actor, key, payload, stamp, decision.reason, decision.detail
        )
        unit.reject(rejected)
        return flow.name, decision
    record = TransitionRecord(
        instance_id=instance.id,
        seq=instance.version + 1,
        event=event,
        source=instance.state,
        dest=decision.dest,
        actor=actor,
        idempotency_key=key,
        payload=payload,
        occurred_at=stamp,
        fingerprint=flow.fingerprint,
        flow_version=flow.version,
    )
    bound = bound_fields(decision, payload)
    due = deadline_at(flow, decision.dest, instance.wallet, now, instance.created_at)
    try:
        # raises ConcurrentTransition on a lost race, rolling the whole unit back
        moved = unit.apply(record, expected_version=instance.version, deadline_at=due, bound=bound)
    except ReferenceTaken:
        raise ReferenceInUse(flow.name, bound.get("reference_no", ""), None) from None
    if along is not None:  # raising, it rolls the step back with it
        unit.along(along)
    return flow.name, TransitionResult(record, moved)


def migrate_one(
    unit: Unit,
    catalog: FlowCatalog,
    migration: FlowMigration,
    instance_id: str,
    now: datetime,
    *,
    by: str,
    dry_run: bool,
) -> MigratedInstance | None:
    """Move one instance to the migration's version as a logged operator step.

    Returns ``None`` when the instance no longer needs it: another version by now, or finished.
    The step is a compare-and-set like any other: a writer that moved the instance first makes
    it raise :class:`~fsm.errors.ConcurrentTransition`, and the whole unit rolls back.
    """
    instance = unit.load(instance_id)
    target = migration.target(instance.state)
    if instance.flow_version != migration.from_version or target is None:
        return None
    moved = MigratedInstance(
        instance.id, instance.state, target, migration.from_version, migration.to_version, None
    )
    if dry_run:
        return moved
    new = catalog.version(migration.flow, migration.to_version)
    record = TransitionRecord(
        instance_id=instance.id,
        seq=instance.version + 1,
        event=MIGRATE_EVENT,
        source=instance.state,
        dest=target,
        actor=str(Actor.OPERATOR),
        idempotency_key=f"migrate:{migration.name}",
        payload={"migration": migration.name, "by": by},
        occurred_at=step_time(now, instance, MIGRATE_EVENT),
        fingerprint=new.fingerprint,
        flow_version=new.version,
    )
    due = deadline_at(new, target, instance.wallet, now, instance.created_at)
    unit.apply(record, expected_version=instance.version, deadline_at=due, bound={})
    return replace(moved, record=record)


__all__ = ["Written", "flow_of", "migrate_one", "transact", "write", "write_batch"]
