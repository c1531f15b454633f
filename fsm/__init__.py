"""Explicit, persisted finite-state machines for payment lifecycles.

Flows are validated data (:mod:`fsm.definition`; the payment flows are :data:`fsm.flows.FLOWS`,
every released version of each), :class:`Engine` is the only way to move an instance, every step
is stored with its actor, idempotency key and flow version, and :func:`replay` rebuilds and
verifies an instance's state from its log, each step under the version it ran on; every log row
is chained to the one before it (:mod:`fsm.chain`), so an edit shows as tampered.
A :class:`Checkpoint` (:func:`take_checkpoint`, :func:`load_checkpoint`,
:func:`verify_against_checkpoint`), kept outside the database, shows a whole instance deleted or
rolled back; :func:`reseal` seals hash-only chains under the audit key once found intact.
:class:`EngineTelemetry` gives the engine's metrics and spans through ``opentelemetry-api``
(no-ops without an SDK), and :func:`watch_oldest_unsettled` the age of the oldest open payment.
This package does no network I/O and never imports adapters.
"""

import logging

from fsm._payload import REDACTED
from fsm.chain import AuditKeys, ChainStatus, ChainVerdict, verify_chains
from fsm.chain.checkpoint import Checkpoint
from fsm.chain.checkpoint import load as load_checkpoint
from fsm.chain.checkpoint import take as take_checkpoint
from fsm.chain.checkpoint import verify_against as verify_against_checkpoint
from fsm.clock import Clock, ManualClock, SystemClock
from fsm.definition import (
    Actor,
    Deadline,
    FlowCatalog,
    FlowDefinition,
    FlowMigration,
    FlowVersions,
    GiveUp,
    Guard,
    GuardContext,
    StateKind,
    StateSpec,
    TransitionSpec,
)
from fsm.engine import Engine
from fsm.errors import (
    ActorNotAllowed,
    CheckpointRefused,
    ConcurrentTransition,
    ConfigurationError,
    DiagramBackendUnavailable,
    FlowDefinitionError,
    FlowMigrationError,
    FsmError,
    GuardRefused,
    IdempotencyKeyReused,
    InstanceExists,
    InstanceNotFound,
    InvalidInstanceData,
    ReferenceInUse,
    RejectReason,
    StaleEvent,
    StorageError,
    StorageUnavailable,
    TransitionError,
    TransitionNotAllowed,
    UnknownDiagramFormat,
    UnknownFlow,
    UnknownFlowVersion,
    UnknownMigration,
)
from fsm.events import Event
from fsm.listeners import Listener, Listeners
from fsm.model import (
    FireRequest,
    Instance,
    MigratedInstance,
    RejectedEvent,
    TransitionRecord,
    TransitionResult,
)
from fsm.replay import Divergence, ReplayResult, Verdict, replay, replay_instance, verify_stored
from fsm.retry import DEFAULT_RETRY, RetryPolicy, retry_concurrent
from fsm.store.memory import MemoryStore
from fsm.store.protocol import Store
from fsm.store.reseal import Resealed, reseal
from fsm.store.sql import DEFAULT_DB_URL, SqlStore
from fsm.telemetry import EngineTelemetry, watch_oldest_unsettled

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "DEFAULT_DB_URL",
    "DEFAULT_RETRY",
    "REDACTED",
    "Actor",
    "ActorNotAllowed",
    "AuditKeys",
    "ChainStatus",
    "ChainVerdict",
    "Checkpoint",
    "CheckpointRefused",
    "Clock",
    "ConcurrentTransition",
    "ConfigurationError",
    "Deadline",
    "DiagramBackendUnavailable",
    "Divergence",
    "Engine",
    "EngineTelemetry",
    "Event",
    "FireRequest",
    "FlowCatalog",
    "FlowDefinition",
    "FlowDefinitionError",
    "FlowMigration",
    "FlowMigrationError",
    "FlowVersions",
    "FsmError",
    "GiveUp",
    "Guard",
    "GuardContext",
    "GuardRefused",
    "IdempotencyKeyReused",
    "Instance",
    "InstanceExists",
    "InstanceNotFound",
    "InvalidInstanceData",
    "Listener",
    "Listeners",
    "ManualClock",
    "MemoryStore",
    "MigratedInstance",
    "ReferenceInUse",
    "RejectReason",
    "RejectedEvent",
    "ReplayResult",
    "Resealed",
    "RetryPolicy",
    "SqlStore",
    "StaleEvent",
    "StateKind",
    "StateSpec",
    "StorageError",
    "StorageUnavailable",
    "Store",
    "SystemClock",
    "TransitionError",
    "TransitionNotAllowed",
    "TransitionRecord",
    "TransitionResult",
    "TransitionSpec",
    "UnknownDiagramFormat",
    "UnknownFlow",
    "UnknownFlowVersion",
    "UnknownMigration",
    "Verdict",
    "load_checkpoint",
    "replay",
    "replay_instance",
    "reseal",
    "retry_concurrent",
    "take_checkpoint",
    "verify_against_checkpoint",
    "verify_chains",
    "verify_stored",
    "watch_oldest_unsettled",
]
