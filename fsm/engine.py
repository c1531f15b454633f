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
from functools import partial
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
from fsm._signals import Contention, KeyTaken
from fsm._steps import flow_of, migrate_one, transact, write_batch
from fsm._tap import Tap
from fsm.clock import Clock, SystemClock, require_aware
from fsm.decide import allowed_events, deadline_at, refusal
from fsm.definition import MIGRATE_EVENT, FlowCatalog, FlowDefinition, FlowMigration
from fsm.errors import (
    ConcurrentTransition,
    FsmError,
    InvalidInstanceData,
    RejectReason,
    TransitionError,
    TransitionNotAllowed,
)
from fsm.events import EventTypes
from fsm.listeners import Listeners
from fsm.model import (
    FireRequest,
    Instance,
    MigratedInstance,
    RejectedEvent,
    TransitionRecord,
    TransitionResult,
)
from fsm.retry import DEFAULT_RETRY, RetryPolicy, retry_concurrent
from fsm.store.protocol import Along, Store
from fsm.telemetry import EngineTelemetry, default_engine_telemetry

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
        telemetry: EngineTelemetry | None = None,
    ) -> None:
        """Bind the engine to ``store`` and the ``flows`` it runs (:data:`fsm.flows.FLOWS`).

        The payment flows are :data:`fsm.flows.FLOWS`, a :class:`~fsm.definition.FlowCatalog`
        of every released version; a plain mapping gives each flow as its only version. The
        actors the engine accepts are those its flows declare. Steps emit events of
        ``event_types`` (:data:`fsm.flows.EVENT_TYPES`, :mod:`fsm.events`); ``listeners``
        (:mod:`fsm.listeners`) hear of each once committed. Metrics and spans go to
        ``telemetry`` (:mod:`fsm.telemetry`; by default the global OpenTelemetry providers).
        """
        self._store = store
        self.catalog = FlowCatalog.of(flows)
        self._telemetry = (telemetry or default_engine_telemetry()).bound(self.catalog)
        self._tap = Tap(store, event_types, self._telemetry)
        self.listeners: Listeners = self._tap.listeners
        self.flows: Mapping[str, FlowDefinition] = self.catalog
        self.clock: Clock = clock or SystemClock()
        self._actors = {str(a): str(a) for flow in self.catalog.released() for a in flow.actors}

    @property
    def store(self) -> Store:
        """The store the engine keeps its instances in (fixed when the engine is built)."""
        return self._store

    def uses_store(self, store: object) -> bool:
        """Whether ``store`` is the very store this engine keeps its instances in: for objects
        that keep rows beside the engine's (journals, leases) and must be given the same one."""
        return store is self._store

    def flow(self, name: str, version: int | None = None) -> FlowDefinition:
        """Version ``version`` of the flow called ``name``; its newest when ``version`` is None.

        Raises:
            UnknownFlow: the engine has no such flow (``UnknownFlowVersion``: no such version).
        """
        lineage = self.catalog.lineage(name)
        return lineage.latest if version is None else lineage.version(version)

    def flow_of(self, instance: Instance) -> FlowDefinition:
        """The definition ``instance`` runs under: the flow version it is pinned to."""
        return flow_of(self.catalog, instance)

    def migrate(
        self, flow: str, from_version: int, to_version: int, *, by: str, dry_run: bool = False
    ) -> list[MigratedInstance]:
        """Move every unfinished instance of ``flow`` on ``from_version`` to ``to_version``.

        Each is moved by the declared :class:`~fsm.definition.FlowMigration` as a logged step of
        its own (event ``migrate_version``, actor ``operator``, the migration's name and ``by``
        in its payload) under the same compare-and-set as any step, retried on a lost race.
        Instances that finished, or moved version, meanwhile are left as they are; instances of
        other versions never move.

        Args:
            flow: the flow's name.
            from_version: the version to move instances off.
            to_version: the version after it.
            by: who asks (an operator's name), recorded with each step.
            dry_run: only say which instances would move, and where to.

        Raises:
            UnknownFlow: no such flow.
            UnknownMigration: no migration is declared between the two versions.
            InvalidInstanceData: ``by`` is empty or too long.
        """
        migration = self.catalog.lineage(flow).migration(from_version, to_version)
        who = checked_text("by", by.strip() if isinstance(by, str) else by)
        if not who:
            raise InvalidInstanceData("by must be 1 to 64 characters: who migrates")
        moved = []
        for instance_id in self._store.live_ids(flow, flow_version=from_version):
            one = retry_concurrent(
                partial(self._migrate_one, migration, instance_id, who, dry_run), DEFAULT_RETRY
            )
            if one is not None:
                moved.append(one)
        return moved

    def _migrate_one(
        self, migration: FlowMigration, instance_id: str, by: str, dry_run: bool
    ) -> MigratedInstance | None:
        now = require_aware(self.clock.now())
        try:
            with self._tap.unit() as unit:
                return migrate_one(
                    unit, self.catalog, migration, instance_id, now, by=by, dry_run=dry_run
                )
        except (Contention, KeyTaken):
            raise ConcurrentTransition(instance_id, None, MIGRATE_EVENT, None) from None

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
        """Store a new instance of ``flow`` in its initial state (version 0), pinned to the
        flow's newest version.

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
            flow_version=definition.version,
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
        self._telemetry.started(instance)
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
        along: Along | None = None,
    ) -> TransitionResult:
        """Apply ``event`` to the instance, exactly once per ``idempotency_key``.

        Args:
            instance_id: the instance to move.
            event: the event's name.
            actor: who fires it; must be one of the transition's allowed actors.
            idempotency_key: repeats of this key return the first outcome and apply nothing.
            payload: JSON-ready data recorded with the step; secret-looking fields are redacted.
            along: the caller's writes that ride along with the step
                (:data:`~fsm.store.protocol.Along`), run in its transaction only when it is
                applied: not for a repeated key nor a refusal. Should they raise, the step
                rolls back with them and their error is raised (a database failure as
                ``StorageError``, lock contention as ``ConcurrentTransition``); they must not
                commit, roll back or close the transaction themselves.

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
            ConfigurationError: ``along`` was given to a store without a database connection.
        """
        who = checked_actor(actor, self._actors)
        key = checked_key(idempotency_key)
        clean = clean_payload(payload)
        now = require_aware(self.clock.now())
        with self._telemetry.fire_span(str(event)) as span:
            try:
                flow, outcome = transact(
                    self._tap, self.catalog, instance_id, str(event), who, key, clean, now, along
                )
            except Contention:
                raise ConcurrentTransition(instance_id, None, str(event), None) from None
            log_outcome(flow, outcome, who)
            self._telemetry.outcome(flow, str(event), outcome, span)
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
        batch = write_batch(self._tap, self.catalog, valid, now, self._telemetry) if valid else ()
        written = iter(batch)
        return [next(written) if isinstance(event, CheckedRequest) else event for event in checked]

    def allowed_events(self, instance_id: str, actor: str | None = None) -> tuple[str, ...]:
        """Events that would be applied now (by ``actor``, when given), guards included."""
        instance = self._store.get(instance_id)
        wanted = None if actor is None else checked_actor(actor, self._actors)
        return allowed_events(self.flow_of(instance), instance, wanted)

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
        self._telemetry.outcome(instance.flow, str(event), error, None)
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

    def fire_with_retry(
        self,
        instance_id: str,
        event: str,
        *,
        actor: str,
        idempotency_key: str,
        payload: Mapping[str, Any] | None = None,
        policy: RetryPolicy | None = None,
        along: Along | None = None,
    ) -> TransitionResult:
        """:meth:`fire`, retried on :class:`ConcurrentTransition` under ``policy``."""
        return retry_concurrent(
            lambda: self.fire(
                instance_id,
                event,
                actor=actor,
                idempotency_key=idempotency_key,
                payload=payload,
                along=along,
            ),
            policy or DEFAULT_RETRY,
        )
