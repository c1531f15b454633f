"""The engine: the one way to start a flow instance and to move it.

``Engine.fire`` loads the instance, decides with the flow's compiled machine, and writes the
outcome in one database transaction: the applied transition (compare-and-set plus log row), or the
refused event with its reason. A refused event raises a :class:`~fsm.errors.TransitionNotAllowed`
after it has been recorded; a repeated idempotency key returns the first outcome unchanged. The
key of a step the flow allows is checked by the log's unique key rather than looked up first.
Nothing here does network I/O: adapters do that and report what they learn as events.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from fsm._engine_log import log_outcome, log_refusal
from fsm._inputs import (
    CheckedRequest,
    checked_actor,
    checked_amount,
    checked_currency,
    checked_id,
    checked_key,
    checked_request,
    checked_text,
    checked_wallet,
)
from fsm._payload import clean_payload
from fsm._signals import Contention, KeyTaken, ReferenceTaken
from fsm._tap import Tap
from fsm.clock import Clock, SystemClock, require_aware
from fsm.decide import (
    allowed_events,
    bound_fields,
    deadline_at,
    decide,
    refusal,
    repeated,
    step_time,
)
from fsm.definition import FlowDefinition
from fsm.errors import (
    ConcurrentTransition,
    FsmError,
    InstanceNotFound,
    ReferenceInUse,
    RejectReason,
    TransitionError,
    TransitionNotAllowed,
    UnknownFlow,
)
from fsm.events import EventTypes
from fsm.listeners import Listeners
from fsm.model import FireRequest, Instance, RejectedEvent, TransitionRecord, TransitionResult
from fsm.retry import DEFAULT_RETRY, RetryPolicy, retry_concurrent
from fsm.store.protocol import Store, Unit

logger = logging.getLogger(__name__)


class Engine:
    """Starts and moves flow instances kept in a store (:class:`~fsm.store.protocol.Store`).

    A database failure (a lost connection, a full disk) reaches the caller as
    :class:`~fsm.errors.StorageError`, from every method; lock contention the database gave up
    on while firing becomes :class:`~fsm.errors.ConcurrentTransition`.
    """

    def __init__(
        self,
        store: Store,
        *,
        flows: Mapping[str, FlowDefinition],
        clock: Clock | None = None,
        event_types: EventTypes | None = None,
    ) -> None:
        """Bind the engine to ``store`` and the ``flows`` it runs (:data:`fsm.flows.FLOWS`).

        Steps emit events of ``event_types`` (:data:`fsm.flows.EVENT_TYPES`, :mod:`fsm.events`);
        ``listeners`` (:mod:`fsm.listeners`) hear of each once committed. The engine accepts the
        actors its flows declare."""
        self._store = store
        self._tap = Tap(store, event_types)
        self.listeners: Listeners = self._tap.listeners
        self.flows: Mapping[str, FlowDefinition] = dict(flows)
        self.clock: Clock = clock or SystemClock()
        self._actors = {str(a): str(a) for flow in self.flows.values() for a in flow.actors}

    @property
    def store(self) -> Store:
        """The store the engine keeps its instances in (fixed when the engine is built)."""
        return self._store

    def uses_store(self, store: object) -> bool:
        """Whether ``store`` is the very store this engine keeps its instances in: for objects
        that keep rows beside the engine's (journals, leases) and must be given the same one."""
        return store is self._store

    def flow(self, name: str) -> FlowDefinition:
        """The flow called ``name``.

        Raises:
            UnknownFlow: the engine has no such flow.
        """
        try:
            return self.flows[name]
        except KeyError:
            raise UnknownFlow(name, sorted(self.flows)) from None

    def start(
        self,
        flow: str,
        *,
        instance_id: str | None = None,
        wallet: str | None = None,
        amount: str | int | None = None,
        currency: str = "IDR",
        reference_no: str | None = None,
        tx_id: str | None = None,
        mandate: str | None = None,
    ) -> Instance:
        """Store a new instance of ``flow`` in its initial state (version 0).

        Args:
            flow: name of the flow.
            instance_id: the id to use; a random one when omitted.
            wallet: the wallet; required when the flow names its wallets.
            amount: exact amount in minor units, as an ``int`` or a digit string.
            currency: ISO 4217 code.
            reference_no: the merchant's order reference.
            tx_id: the provider's transaction id, when already known.
            mandate: a stored payment mandate (AstraPay).

        Raises:
            UnknownFlow: no such flow.
            InvalidInstanceData: a field is malformed; nothing was stored.
            InstanceExists: ``instance_id`` is taken.
            ReferenceInUse: a live instance of ``flow`` has ``reference_no``.
        """
        definition = self.flow(flow)
        now = require_aware(self.clock.now())  # a naive clock is refused before any write
        instance = Instance(
            id=checked_id(instance_id or uuid.uuid4().hex),
            flow=definition.name,
            state=definition.initial,
            version=0,
            wallet=checked_wallet(definition, wallet),
            amount=checked_amount(amount),
            currency=checked_currency(currency),
            reference_no=checked_text("reference_no", reference_no),
            tx_id=checked_text("tx_id", tx_id),
            mandate=checked_text("mandate", mandate),
            deadline_at=deadline_at(definition, definition.initial, wallet, now, now),
            created_at=now,
            updated_at=now,
        )
        self._store.insert_instance(instance)
        logger.info(
            "instance started",
            extra={"flow": flow, "instance": instance.id, "to": instance.state},
        )
        return instance

    def fire(
        self,
        instance_id: str,
        event: str,
        *,
        actor: str,
        idempotency_key: str,
        payload: Mapping[str, Any] | None = None,
    ) -> TransitionResult:
        """Apply ``event`` to the instance, exactly once per ``idempotency_key``.

        Args:
            instance_id: the instance to move.
            event: the event's name.
            actor: who fires it; must be one of the transition's allowed actors.
            idempotency_key: repeats of this key return the first outcome and apply nothing.
            payload: JSON-ready data recorded with the step; secret-looking fields are redacted.

        Returns:
            The applied transition and the instance it left; for a repeated key, the first one.

        Raises:
            InstanceNotFound: no such instance.
            InvalidInstanceData: the actor, key or payload is malformed; nothing was recorded.
            TransitionNotAllowed: refused (the subclass says why); recorded, nothing applied.
            IdempotencyKeyReused: the key was used for another event; recorded, nothing applied.
            ConcurrentTransition: another writer won the race; retry (see ``fire_with_retry``).
            ReferenceInUse: the step binds a reference another live instance of the flow has;
                nothing was recorded.
        """
        who = checked_actor(actor, self._actors)
        key = checked_key(idempotency_key)
        clean = clean_payload(payload)
        now = require_aware(self.clock.now())
        try:
            flow, outcome = self._transact(instance_id, str(event), who, key, clean, now)
        except Contention:
            raise ConcurrentTransition(instance_id, None, str(event), None) from None
        log_outcome(flow, outcome, who)
        if isinstance(outcome, TransitionError):
            raise outcome
        return outcome

    def fire_many(self, requests: Sequence[FireRequest]) -> list[TransitionResult | FsmError]:
        """Apply a batch of events, for different payments or the same one, in one transaction.

        Each event gets the outcome :meth:`fire` would give it, in the order given: the applied
        transition (or the first one, for a repeated key), or the error :meth:`fire` would raise
        (a refusal, a reused key, ``InstanceNotFound``, ``InvalidInstanceData`` for bad input).
        Refusals are recorded like applied steps and roll nothing back: the batch commits whole.
        Its instances are locked before anything is read (SQLite: the write lock, ``BEGIN
        IMMEDIATE``; PostgreSQL: their rows, in id order), so no other writer moves them and each
        key is looked up before it is logged; events run in order, each seeing the ones before.

        Raises:
            ConcurrentTransition: the locks could not be had in time, or a writer that takes
                none got in; the whole batch was rolled back and may be sent again.
        """
        now = require_aware(self.clock.now())
        checked = [checked_request(request, self._actors) for request in requests]
        valid = [event for event in checked if isinstance(event, CheckedRequest)]
        written = iter(self._write_batch(valid, now) if valid else ())
        return [next(written) if isinstance(event, CheckedRequest) else event for event in checked]

    def _write_batch(
        self, events: list[CheckedRequest], now: datetime
    ) -> list[TransitionResult | FsmError]:
        written: list[tuple[str | None, TransitionResult | FsmError]] = []
        try:
            with self._tap.unit() as unit:
                unit.lock_all(event.instance_id for event in events)
                for event in events:
                    try:
                        written.append(self._write(unit, *event, now, True))
                    except InstanceNotFound as missing:
                        written.append((None, missing))
        except (Contention, KeyTaken):  # KeyTaken: a writer that takes no lock logged it first
            first = events[0]
            raise ConcurrentTransition(first.instance_id, None, first.event, None) from None
        for (flow, outcome), event in zip(written, events, strict=True):  # once committed
            log_outcome(flow, outcome, event.actor)
        return [outcome for _, outcome in written]

    def allowed_events(self, instance_id: str, actor: str | None = None) -> tuple[str, ...]:
        """Events that would be applied now (by ``actor``, when given), guards included."""
        instance = self._store.get(instance_id)
        wanted = None if actor is None else checked_actor(actor, self._actors)
        return allowed_events(self.flow(instance.flow), instance, wanted)

    def record_refused(
        self,
        instance_id: str,
        event: str,
        *,
        actor: str,
        idempotency_key: str,
        reason: RejectReason,
        detail: str,
        payload: Mapping[str, Any] | None = None,
    ) -> RejectedEvent:
        """Record an event that was refused before reaching the flow, e.g. a forged notification.

        Nothing is applied; the refusal appears in :meth:`rejections` beside the engine's own.

        Raises:
            InstanceNotFound: no such instance.
            InvalidInstanceData: the actor, key or payload is malformed.
        """
        who = checked_actor(actor, self._actors)
        key = checked_key(idempotency_key)
        clean = clean_payload(payload)
        now = require_aware(self.clock.now())
        with self._tap.unit() as unit:
            instance = unit.load(instance_id)
            error = TransitionNotAllowed(
                instance.id, instance.state, str(event), reason=reason, detail=detail
            )
            rejected = refusal(instance, str(event), who, key, clean, now, reason, detail)
            unit.reject(rejected)
        log_refusal(instance.flow, error, who)
        return rejected

    def get(self, instance_id: str) -> Instance:
        """The stored instance (``InstanceNotFound`` when there is none)."""
        return self._store.get(instance_id)

    def find(self, *, tx_id: str | None = None, reference_no: str | None = None) -> list[Instance]:
        """Instances with the given provider transaction id and/or reference, by id."""
        return self._store.find(tx_id=tx_id, reference_no=reference_no)

    def history(self, instance_id: str) -> list[TransitionRecord]:
        """The instance's applied transitions, in order."""
        return self._store.history(instance_id)

    def rejections(self, instance_id: str) -> list[RejectedEvent]:
        """The instance's refused events, in arrival order."""
        return self._store.rejections(instance_id)

    def has_rejection(self, instance_id: str, idempotency_key: str) -> bool:
        """Whether a refused event under ``idempotency_key`` is recorded for the instance."""
        return self._store.has_rejection(instance_id, idempotency_key)

    def _transact(
        self,
        instance_id: str,
        event: str,
        actor: str,
        key: str,
        payload: Mapping[str, Any],
        now: datetime,
    ) -> tuple[str, TransitionResult | TransitionError]:
        """One unit for the event, and a second one when the log already holds its key.

        A step the flow allows is applied without looking its key up first: the log's unique
        ``(instance_id, idempotency_key)`` refuses a repeat, the unit rolls back whole, and the
        second unit answers from the logged record (a duplicate, or a reused key).
        """
        try:
            with self._tap.unit() as unit:
                return self._write(unit, instance_id, event, actor, key, payload, now, False)
        except KeyTaken:
            with self._tap.unit() as unit:
                return self._write(unit, instance_id, event, actor, key, payload, now, True)

    def _write(
        self,
        unit: Unit,
        instance_id: str,
        event: str,
        actor: str,
        key: str,
        payload: Mapping[str, Any],
        now: datetime,
        key_first: bool,
    ) -> tuple[str, TransitionResult | TransitionError]:
        instance = unit.load(instance_id)
        flow = self.flow(instance.flow)
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
            unit.reject(
                refusal(
                    instance, event, actor, key, payload, stamp, decision.reason, decision.detail
                )
            )
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
        )
        bound = bound_fields(decision, payload)
        due = deadline_at(flow, decision.dest, instance.wallet, now, instance.created_at)
        try:
            unit.apply(  # raises ConcurrentTransition, rolling the whole unit back, on a lost race
                record, expected_version=instance.version, deadline_at=due, bound=bound
            )
        except ReferenceTaken:
            raise ReferenceInUse(flow.name, bound.get("reference_no", ""), None) from None
        return flow.name, TransitionResult(record, instance.advanced(record, due, bound))

    def fire_with_retry(
        self,
        instance_id: str,
        event: str,
        *,
        actor: str,
        idempotency_key: str,
        payload: Mapping[str, Any] | None = None,
        policy: RetryPolicy | None = None,
    ) -> TransitionResult:
        """:meth:`fire`, retried on :class:`ConcurrentTransition` under ``policy``."""
        return retry_concurrent(
            lambda: self.fire(
                instance_id, event, actor=actor, idempotency_key=idempotency_key, payload=payload
            ),
            policy or DEFAULT_RETRY,
        )
