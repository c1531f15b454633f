"""Every error the engine, its store and its renderers raise, as one tree.

Context lives in attributes, not only in the message, and ``retryable`` says whether trying the
same call again can help. :class:`RejectReason` says why a refused event was recorded. An
integration's own errors (providers, notifications) derive from :class:`FsmError` in their own
package, so that one ``except FsmError`` still catches everything. The signals a unit of work
raises to the engine are private (:mod:`fsm._signals`) and derive from none of these.

::

    FsmError                            root; .retryable (default False)
    ├── FlowDefinitionError             a flow failed validation; .flow, .problems
    │   └── FlowMigrationError          a declared version migration failed validation
    ├── UnknownFlow                     no flow registered under that name; .name
    │   └── UnknownFlowVersion          the flow has no such version; .version, .versions
    ├── UnknownMigration                no migration declared between two versions of a flow
    ├── UnknownDiagramFormat            a diagram path whose suffix is not .dot, .svg or .png
    ├── CheckpointRefused               a chain checkpoint is malformed, edited or not checkable
    ├── InstanceNotFound                no stored instance with that id; .instance_id
    ├── InstanceExists                  an instance with that id is already stored
    ├── ReferenceInUse                  a live instance of the flow has that reference
    ├── InvalidInstanceData             bad amount, naive time, missing bound field, ...
    ├── TransitionError                 .instance_id, .state (None: not loaded), .event
    │   ├── TransitionNotAllowed        refused; .reason says why
    │   │   ├── ActorNotAllowed         the event exists here, but not for this actor
    │   │   ├── StaleEvent              arrived after the instance settled
    │   │   └── GuardRefused            the transition's guard said no
    │   ├── ConcurrentTransition        version moved since load; retryable
    │   └── IdempotencyKeyReused        same key, different event
    ├── StorageError                    the database failed; .retryable says if a retry can help
    │   └── StorageUnavailable          unreachable, connection lost, locked, read-only; retryable
    └── ConfigurationError              missing or wrong settings (a schema, a backend, ...)
        └── DiagramBackendUnavailable   the Graphviz binary or package is missing
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum


class FsmError(Exception):
    """Root of every error the library raises."""

    retryable: bool = False


class FlowDefinitionError(FsmError, ValueError):
    """A flow definition failed validation; ``problems`` lists every problem found."""

    def __init__(self, flow: str, problems: Sequence[str]) -> None:
        self.flow = flow
        self.problems = tuple(problems)
        listing = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"flow {flow!r} is invalid:\n{listing}")


class UnknownFlow(FsmError, KeyError):
    """No flow is registered under the requested name."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        self.known = tuple(known)
        super().__init__(f"unknown flow {name!r}; known flows: {', '.join(self.known)}")

    def __str__(self) -> str:
        return str(self.args[0])


class FlowMigrationError(FlowDefinitionError):
    """A declared migration between two versions of a flow failed validation: a non-final state
    left unmapped, a state that does not exist, or a settled payment moved to an unsettled state
    (``problems`` lists each)."""


class UnknownFlowVersion(UnknownFlow):
    """The flow exists, but no released version of it has that number."""

    def __init__(self, name: str, version: int, versions: Sequence[int]) -> None:
        self.version = version
        self.versions = tuple(versions)
        super().__init__(name, [name])
        shown = ", ".join(str(v) for v in self.versions)
        self.args = (f"flow {name!r} has no version {version!r}; its versions: {shown}",)


class UnknownMigration(FsmError, LookupError):
    """No migration is declared from one version of a flow to another."""

    def __init__(self, flow: str, from_version: int, to_version: int) -> None:
        self.flow = flow
        self.from_version = from_version
        self.to_version = to_version
        super().__init__(
            f"flow {flow!r} declares no migration from version {from_version} to {to_version}"
        )


class UnknownDiagramFormat(FsmError, ValueError):
    """A diagram was asked for in a format (file suffix) that no renderer writes."""

    def __init__(self, suffix: str, known: Sequence[str]) -> None:
        self.suffix = suffix
        self.known = tuple(known)
        shown = repr(suffix) if suffix else "no suffix"
        super().__init__(f"unknown diagram format {shown}; use one of: {', '.join(self.known)}")


class CheckpointRefused(FsmError, ValueError):
    """A checkpoint of the audit chains (:mod:`fsm.chain.checkpoint`) cannot be trusted or taken.

    Its file is malformed, its heads or signature do not match (it was edited), its key was not
    given, or a chain it would vouch for is tampered. Nothing is checked against it or written.
    """


class InstanceNotFound(FsmError, LookupError):
    """No instance is stored under the requested id."""

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        super().__init__(f"no flow instance {instance_id!r}")


class InstanceExists(FsmError):
    """An instance with the requested id is already stored."""

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        super().__init__(f"flow instance {instance_id!r} already exists")


class ReferenceInUse(FsmError):
    """Another instance of the flow with this reference is still live (not final).

    A notification that names only the reference must find exactly one payment, so a second
    live one (a double click) is refused; nothing was stored. ``live_id`` is the live one.
    """

    def __init__(self, flow: str, reference_no: str, live_id: str | None) -> None:
        super().__init__(
            f"{flow} {live_id!r} with reference {reference_no!r} is not final yet; "
            "a second one may start only after it ends"
        )
        self.flow = flow
        self.reference_no = reference_no
        self.live_id = live_id


class InvalidInstanceData(FsmError, ValueError):
    """Data given to the engine is malformed: an inexact amount, a naive time, a missing field."""


class RejectReason(StrEnum):
    """Why an event was recorded without being applied."""

    UNKNOWN_EVENT = "unknown_event"
    NOT_ALLOWED = "not_allowed"
    WRONG_ACTOR = "wrong_actor"
    GUARD_REFUSED = "guard_refused"
    STALE = "stale"
    DUPLICATE = "duplicate"
    KEY_REUSED = "key_reused"
    INVALID_PAYLOAD = "invalid_payload"
    UNVERIFIED = "unverified"
    """Refused before the engine: a signature or a reference did not verify."""
    HINT = "hint"
    """An unauthenticated hint (a browser return) recorded without effect."""
    UNKNOWN_STATUS = "unknown_status"
    """A provider status that no table maps; nothing changes and the state's deadline re-checks."""
    LATE_ANSWER = "late_answer"
    """A provider's answer that came after a repair had closed its call: kept for a person."""
    SETTLED_BY_HAND = "settled_by_hand"
    """A person's settlement of a call left in doubt: recorded beside the steps, nothing applied."""


class TransitionError(FsmError):
    """An event could not be applied to an instance.

    ``state`` is the state it was refused in; ``None`` when the instance was never loaded (the
    database gave up on its lock first).
    """

    def __init__(self, instance_id: str, state: str | None, event: str, message: str) -> None:
        self.instance_id = instance_id
        self.state = state
        self.event = event
        super().__init__(message)


class TransitionNotAllowed(TransitionError):
    """The event is not allowed now; it was recorded as rejected and changed nothing."""

    state: str
    reason: RejectReason = RejectReason.NOT_ALLOWED

    def __init__(
        self,
        instance_id: str,
        state: str,
        event: str,
        *,
        reason: RejectReason | None = None,
        detail: str = "",
    ) -> None:
        if reason is not None:
            self.reason = reason
        self.detail = detail
        message = f"event {event!r} refused in state {state!r} of {instance_id!r}: {self.reason}"
        super().__init__(instance_id, state, event, f"{message} ({detail})" if detail else message)


class ActorNotAllowed(TransitionNotAllowed):
    """The event exists in this state, but the actor may not fire it."""

    reason = RejectReason.WRONG_ACTOR


class StaleEvent(TransitionNotAllowed):
    """The event arrived after the instance settled and would move it backwards."""

    reason = RejectReason.STALE


class GuardRefused(TransitionNotAllowed):
    """The transition exists for this actor, but its guard refused it."""

    reason = RejectReason.GUARD_REFUSED


class ConcurrentTransition(TransitionError):
    """Another writer moved the instance since it was loaded, or held it locked; fire again.

    ``state`` and ``expected_version`` are what was loaded, or ``None`` when the database gave
    up waiting for the lock before anything was.
    """

    retryable = True

    def __init__(
        self, instance_id: str, state: str | None, event: str, expected_version: int | None
    ) -> None:
        self.expected_version = expected_version
        moved = "moved" if expected_version is None else f"moved past version {expected_version}"
        super().__init__(
            instance_id, state, event, f"{instance_id!r} {moved} while {event!r} was applied"
        )


class IdempotencyKeyReused(TransitionError):
    """The idempotency key was already used on this instance for a different event."""

    state: str

    def __init__(
        self, instance_id: str, state: str, event: str, key: str, original_event: str
    ) -> None:
        self.key = key
        self.original_event = original_event
        super().__init__(
            instance_id,
            state,
            event,
            f"idempotency key {key!r} of {instance_id!r} was used for {original_event!r}, "
            f"not {event!r}",
        )


class StorageError(FsmError):
    """The database failed a call: a driver or SQLAlchemy error, translated by the store.

    The message is the driver's first line (never the statement or its parameters); the driver's
    own exception is the ``__cause__``. What was not committed is lost. ``retryable`` says whether
    the same call may succeed later; a constraint or a schema the call did not expect is not.
    """

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        if retryable is not None:
            self.retryable = retryable
        super().__init__(message)


class StorageUnavailable(StorageError):
    """The database could not be reached, or refused for now (locked, read-only, ended session).

    Sending the same request again later is safe, since idempotency keys absorb whatever of it
    was committed.
    """

    retryable = True


class ConfigurationError(FsmError):
    """Settings are missing or wrong."""


class DiagramBackendUnavailable(ConfigurationError):
    """Graphviz (the Python package or the ``dot`` binary) is not installed."""
