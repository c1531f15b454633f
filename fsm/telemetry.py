"""The engine's metrics and spans through ``opentelemetry-api``: no-ops until a service sets an SDK.

Instruments are made once, when an :class:`EngineTelemetry` is built (engines built without one
share one on the global providers), so a step only adds to instruments that already exist. While
the global providers are still the API's own (no SDK set), the engine skips measuring altogether,
so an engine that nobody observes pays a flag check per step; a provider set later is seen within
a second. Attributes are few and bounded (flow, event, state, outcome, reason, wallet): never a
payment's id, reference or provider transaction id, which would make one time series per payment.

- ``ewallet_fsm.transitions`` (counter): each event the engine handled, by ``flow``, ``event``
  and ``outcome`` (``applied``, ``duplicate``, ``refused`` with its ``reason``).
- ``ewallet_fsm.payments`` (up-down counter): payments entering (+1) and leaving (-1) each
  unsettled state, by ``flow`` and ``state``, counted once the step committed; a settled state
  (paid, failed, refunded...) is not counted, so a payment that settled adds nothing. Each
  process counts the steps it made: summed over a service's processes since they started, it is
  the number waiting in each state.
- ``ewallet_fsm.settle.duration`` (histogram, s): from a payment's start to the step that
  settled it (entering a state whose kind is settled), once per payment, by ``flow``, the
  settled ``state`` and ``wallet``.
- ``ewallet_fsm.state.wait`` (histogram, s): how long a payment waited in a state of a waiting
  kind before a step took it on, by ``flow``, ``state`` and ``wallet``; measured from its step
  before, so a status check repeated in place closes one wait and opens the next.
- ``ewallet_fsm.unsettled.oldest_age`` (observable gauge, s): the age of the oldest unsettled
  instance of each flow, read from the store when a reader collects
  (:func:`watch_oldest_unsettled`).
- a span ``fsm.fire`` per :meth:`~fsm.Engine.fire`, with ``fsm.flow``, ``fsm.event``,
  ``fsm.outcome`` and ``fsm.reason``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Final, Protocol

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.trace import Span, StatusCode, TracerProvider

from fsm.clock import Clock
from fsm.definition import FlowCatalog, StateKind
from fsm.errors import FsmError, RejectReason, TransitionError
from fsm.model import Instance, TransitionResult
from fsm.store.oldest import oldest_unfinished
from fsm.store.protocol import Store

logger = logging.getLogger(__name__)

SCOPE: Final = "ewallet_fsm"
"""The instrumentation scope of every instrument and span the library makes."""

APPLIED: Final = "applied"
DUPLICATE: Final = "duplicate"
REFUSED: Final = "refused"
_WAITING = frozenset({StateKind.WAITING_CUSTOMER, StateKind.WAITING_PROVIDER})
_UNKNOWN_EVENT = str(RejectReason.UNKNOWN_EVENT)

Kinds = Mapping[tuple[str, int], Mapping[str, StateKind]]
"""The kind of each state, by flow name and version."""


def state_kinds(catalog: FlowCatalog) -> Kinds:
    """The kind of every state of every released flow version in ``catalog``."""
    return {
        (flow.name, flow.version): {state.name: state.kind for state in flow.states}
        for flow in catalog.released()
    }


class EngineTelemetry:
    """The engine's instruments, made once on the given providers (the global ones when None).

    Give one to an :class:`~fsm.Engine` (``telemetry=``) to use providers of your own, e.g.
    a test's in-memory readers; several engines may share one.
    """

    def __init__(
        self,
        *,
        meter_provider: MeterProvider | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        """Make the instruments and the tracer."""
        self.meter_provider = meter_provider
        self.tracer_provider = tracer_provider
        meter = metrics.get_meter(SCOPE, meter_provider=meter_provider)
        self.tracer = trace.get_tracer(SCOPE, tracer_provider=tracer_provider)
        self.transitions = meter.create_counter(
            "ewallet_fsm.transitions", unit="{event}", description="events the engine handled"
        )
        self.payments = meter.create_up_down_counter(
            "ewallet_fsm.payments", unit="{payment}", description="payments per unsettled state"
        )
        self.settle = meter.create_histogram(
            "ewallet_fsm.settle.duration", unit="s", description="from start to settled"
        )
        self.wait = meter.create_histogram(
            "ewallet_fsm.state.wait", unit="s", description="time waited in a waiting state"
        )

    def bound(self, catalog: FlowCatalog) -> StepTelemetry:
        """These instruments, reading state kinds from ``catalog``."""
        return StepTelemetry(self, state_kinds(catalog))


_DEFAULT: list[EngineTelemetry] = []
_DEFAULT_LOCK = threading.Lock()


def default_engine_telemetry() -> EngineTelemetry:
    """The engine's instruments on the global providers, made once per process (on first use),
    so that engines built without ``telemetry=`` share them."""
    if not _DEFAULT:
        with _DEFAULT_LOCK:
            if not _DEFAULT:
                _DEFAULT.append(EngineTelemetry())
    return _DEFAULT[0]


class StepTelemetry:
    """What an engine records as it handles events: its telemetry and its flows' state kinds."""

    __slots__ = ("_kinds", "_metered", "_traced", "telemetry")

    def __init__(self, telemetry: EngineTelemetry, kinds: Kinds) -> None:
        """Record on ``telemetry``; ``kinds`` says which states wait, settle or finish."""
        self.telemetry = telemetry
        self._kinds = kinds
        self._metered = telemetry.meter_provider is not None
        self._traced = telemetry.tracer_provider is not None

    @property
    def measuring(self) -> bool:
        """Whether metrics go anywhere: providers were given, or an SDK's are set globally."""
        return self._metered or _GLOBAL_METERS.set()

    def fire_span(self, event: str) -> FireSpan:
        """A span for one fire, ended when the block leaves (none while nothing traces)."""
        if not (self._traced or _GLOBAL_TRACERS.set()):
            return _NO_SPAN
        span = self.telemetry.tracer.start_span("fsm.fire", attributes={"fsm.event": event})
        return FireSpan(span)

    def started(self, instance: Instance) -> None:
        """A stored new instance: +1 in its initial state."""
        if not self.measuring:
            return
        kind = self._kind(instance.flow, instance.flow_version, instance.state)
        if kind is not None and not kind.settled:
            self.telemetry.payments.add(1, {"flow": instance.flow, "state": instance.state})

    def outcome(
        self, flow: str | None, event: str, outcome: TransitionResult | FsmError, span: Span | None
    ) -> None:
        """Count one handled event by its outcome, and say it on the fire's span."""
        if not self.measuring:
            return
        attributes = outcome_attributes(flow, event, outcome)
        if attributes is None:
            return
        self.telemetry.transitions.add(1, attributes)
        if span is not None and span.is_recording():
            span.set_attributes(
                {f"fsm.{name}": value for name, value in attributes.items() if name != "event"}
            )

    def applied(self, steps: Iterable[tuple[Instance, TransitionResult]]) -> None:
        """Committed steps, each with the instance as it was before: states, waits, settling.

        Like a listener's, a failure here is logged and swallowed: the steps have committed.
        """
        try:
            for before, result in steps:
                self._measure(before, result)
        except Exception:  # measuring never fails a step that already committed
            logger.exception("measuring committed steps failed")

    def _measure(self, before: Instance, result: TransitionResult) -> None:
        record, moved = result.record, result.instance
        kinds = self._kinds.get((moved.flow, record.flow_version), {})
        source, dest = kinds.get(record.source), kinds.get(record.dest)
        if source is None or dest is None:  # a state no released version declares
            return
        flow, wallet = moved.flow, moved.wallet or ""
        if source in _WAITING:
            waited = (record.occurred_at - before.updated_at).total_seconds()
            self.telemetry.wait.record(
                waited, {"flow": flow, "state": record.source, "wallet": wallet}
            )
        if record.source == record.dest:  # a step in place enters and leaves nothing
            return
        if not source.settled:
            self.telemetry.payments.add(-1, {"flow": flow, "state": record.source})
            if dest.settled:
                took = (record.occurred_at - moved.created_at).total_seconds()
                self.telemetry.settle.record(
                    took, {"flow": flow, "state": record.dest, "wallet": wallet}
                )
        if not dest.settled:
            self.telemetry.payments.add(1, {"flow": flow, "state": record.dest})

    def _kind(self, flow: str, version: int, state: str) -> StateKind | None:
        return self._kinds.get((flow, version), {}).get(state)


def configured(provider: object) -> bool:
    """Whether ``provider`` is an SDK's: the API's own (no-op, or the proxy standing in until a
    provider is set) live in the API's ``opentelemetry.metrics`` and ``opentelemetry.trace``."""
    module = type(provider).__module__
    return not module.startswith(("opentelemetry.metrics", "opentelemetry.trace"))


class GlobalProvider:
    """Whether an SDK's provider is set globally, looked up at most once a second: the lookup
    reads the environment, too slow for every step. Once set it stays set (OpenTelemetry lets a
    process set its provider once), so a step then only reads a flag."""

    __slots__ = ("_due", "_get", "_set")

    def __init__(self, get: Callable[[], object]) -> None:
        """Look the provider up with ``get``."""
        self._get = get
        self._set = False
        self._due = 0.0

    def set(self) -> bool:
        """Whether an SDK's provider is set (as of the last look, at most a second ago)."""
        if self._set:
            return True
        now = time.monotonic()
        if now >= self._due:
            self._set, self._due = configured(self._get()), now + 1.0
        return self._set


_GLOBAL_METERS = GlobalProvider(metrics.get_meter_provider)
_GLOBAL_TRACERS = GlobalProvider(trace.get_tracer_provider)


def outcome_attributes(
    flow: str | None, event: str, outcome: TransitionResult | FsmError
) -> dict[str, str] | None:
    """The counter's attributes for one outcome; ``None`` for an error that is no refusal."""
    if isinstance(outcome, TransitionResult):
        kind = DUPLICATE if outcome.duplicate else APPLIED
        return {"flow": flow or outcome.instance.flow, "event": event, "outcome": kind}
    if not isinstance(outcome, TransitionError):
        return None
    reason = str(getattr(outcome, "reason", RejectReason.KEY_REUSED))
    # An event no flow declares is whatever a caller typed: named once, not by its text.
    named = "" if reason == _UNKNOWN_EVENT else event
    return {"flow": flow or "", "event": named, "outcome": REFUSED, "reason": reason}


class FireSpan:
    """A started span, ended (with the error's type, when one leaves the block) on exit."""

    __slots__ = ("span",)

    def __init__(self, span: Span | None) -> None:
        """Hold ``span`` (``None``: nothing to end)."""
        self.span = span

    def __enter__(self) -> Span | None:
        """The span."""
        return self.span

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace_: TracebackType | None,
    ) -> None:
        """End the span, marked as an error when one leaves the block."""
        span = self.span
        if span is None:
            return
        if kind is not None and span.is_recording():
            span.set_status(StatusCode.ERROR, kind.__name__)
        span.end()


_NO_SPAN = FireSpan(None)


class Watched(Protocol):
    """What the oldest-age gauge reads: an :class:`~fsm.Engine`'s flows, store and clock."""

    @property
    def catalog(self) -> FlowCatalog:
        """The flows, whose names the gauge reports."""

    @property
    def store(self) -> Store:
        """The store the instances are read from."""

    @property
    def clock(self) -> Clock:
        """What "now" is."""


def watch_oldest_unsettled(engine: Watched, *, meter_provider: MeterProvider | None = None) -> None:
    """Observe the age of the oldest unsettled instance of each of ``engine``'s flows.

    The gauge ``ewallet_fsm.unsettled.oldest_age`` (seconds, by ``flow``; 0 when none waits) is
    read from the engine's store each time a reader collects, by one query over the unfinished
    instances (those with a deadline, which an index keeps), leaving out those in a settled
    state (paid, awaiting the merchant's confirmation). A store that fails is skipped.
    """
    meter = metrics.get_meter(SCOPE, meter_provider=meter_provider)
    names = sorted(engine.catalog)
    settled = {
        (flow, state)
        for (flow, _), kinds in state_kinds(engine.catalog).items()
        for state, kind in kinds.items()
        if kind.settled
    }

    def observe(_options: CallbackOptions) -> Iterator[Observation]:
        try:
            oldest = oldest_unfinished(engine.store)
        except FsmError:
            return
        now = engine.clock.now()
        by_flow: dict[str, datetime] = {}
        for (flow, state), started in oldest.items():
            if (flow, state) not in settled and (flow not in by_flow or started < by_flow[flow]):
                by_flow[flow] = started
        for flow in names:
            since = by_flow.get(flow)
            age = 0.0 if since is None else max(0.0, (now - since).total_seconds())
            yield Observation(age, {"flow": flow})

    meter.create_observable_gauge(
        "ewallet_fsm.unsettled.oldest_age",
        callbacks=[observe],
        unit="s",
        description="age of the oldest unsettled payment",
    )


__all__ = [
    "APPLIED",
    "DUPLICATE",
    "REFUSED",
    "SCOPE",
    "EngineTelemetry",
    "FireSpan",
    "GlobalProvider",
    "Kinds",
    "StepTelemetry",
    "Watched",
    "configured",
    "default_engine_telemetry",
    "outcome_attributes",
    "state_kinds",
    "watch_oldest_unsettled",
]
