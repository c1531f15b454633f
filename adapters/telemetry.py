"""The adapters' metrics and spans through ``opentelemetry-api``: NICEPAY calls, inbound requests,
the reconciler and the relay. Without an SDK every call here is a no-op.

Instruments (their attributes stay few and bounded: never a payment's id, reference or tXid):

- ``ewallet_fsm.provider.duration`` (histogram, s): one NICEPAY call (one try), by
  ``operation`` and ``result_code`` (``0000``, NICEPAY's code, or the error's type).
- ``ewallet_fsm.notification.lag`` (histogram, s): from the transaction time a notification
  carries (``transDt``/``transTm``, Asia/Jakarta) to its receipt, by ``wallet``.
- ``ewallet_fsm.reconcile.outcomes`` (counter): each repair and each deadline acted on, by
  ``kind`` (``repair``, ``deadline``) and ``outcome``.
- ``ewallet_fsm.relay.outcomes`` (counter): each event a relay handed to its sink, by ``sink``
  and ``outcome`` (``delivered``, ``retried``, ``dead``).

Spans: ``nicepay <operation>`` per call (``nicepay.operation``, ``nicepay.result_code``,
``http.response.status_code``), and ``inbound <endpoint>`` per notification or browser return
(``ewallet_fsm.endpoint``, ``http.response.status_code``). An inbound span is a root of its
own, linked to the caller's ``traceparent`` when the request carries one, never its child: the
endpoints are public, and a child would let anyone join our traces and force them sampled.
:func:`current_trace_carrier` and
:func:`linked_span` carry a span's identity across a queue, so that work a request leaves
behind starts a span linked to it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

from opentelemetry import metrics, trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Link, Span, SpanKind, StatusCode, Tracer, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from fsm.telemetry import SCOPE

_WIB: Final = ZoneInfo("Asia/Jakarta")  # NICEPAY's times are local to Jakarta
_PROPAGATOR: Final = TraceContextTextMapPropagator()
_TRACEPARENT: Final = "traceparent"
_NO_PARENT: Final = trace.set_span_in_context(trace.INVALID_SPAN)
"""A context with no span in it: a span started in it is a root, whatever span is current."""


class ServiceTelemetry:
    """The adapters' instruments, made once on the given providers (the global ones when None)."""

    def __init__(
        self,
        *,
        meter_provider: MeterProvider | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        """Make the instruments and the tracer."""
        meter = metrics.get_meter(SCOPE, meter_provider=meter_provider)
        self.tracer: Tracer = trace.get_tracer(SCOPE, tracer_provider=tracer_provider)
        self.provider_duration = meter.create_histogram(
            "ewallet_fsm.provider.duration", unit="s", description="one NICEPAY call"
        )
        self.notification_lag = meter.create_histogram(
            "ewallet_fsm.notification.lag",
            unit="s",
            description="from a notification's transaction time to its receipt",
        )
        self.reconcile_outcomes = meter.create_counter(
            "ewallet_fsm.reconcile.outcomes", unit="{item}", description="reconciler work"
        )
        self.relay_outcomes = meter.create_counter(
            "ewallet_fsm.relay.outcomes", unit="{event}", description="events handed to a sink"
        )

    @contextmanager
    def provider_call(self, operation: str) -> Iterator[ProviderCall]:
        """A span and a timing around one NICEPAY call; say its result on what it yields."""
        attributes = {"nicepay.operation": operation}
        with self.tracer.start_as_current_span(
            f"nicepay {operation}", kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            call = ProviderCall(span, operation)
            try:
                yield call
            finally:
                self.provider_duration.record(
                    call.elapsed(), {"operation": operation, "result_code": call.result_code}
                )

    @contextmanager
    def inbound_span(self, endpoint: str, headers: Mapping[str, str]) -> Iterator[Span]:
        """The span of one inbound request: a new root, linked to its ``traceparent`` if any.

        The caller's context is only linked, so its sampled flag decides nothing here.
        """
        with self.tracer.start_as_current_span(
            f"inbound {endpoint}",
            context=_NO_PARENT,
            kind=SpanKind.SERVER,
            attributes={"ewallet_fsm.endpoint": endpoint},
            links=_links_to(headers.get(_TRACEPARENT)),
        ) as span:
            yield span

    def notified(
        self, params: Mapping[str, str], received_at: datetime, wallet: str | None
    ) -> None:
        """Record a notification's lag, when it carries a transaction time that reads as one."""
        sent = transaction_time(params)
        if sent is not None:
            lag = (received_at - sent).total_seconds()
            self.notification_lag.record(max(lag, 0.0), {"wallet": wallet or ""})

    def reconciled(self, kind: str, outcome: str) -> None:
        """Count one repair or deadline the reconciler acted on."""
        self.reconcile_outcomes.add(1, {"kind": kind, "outcome": outcome})

    def relayed(self, sink: str, outcome: str) -> None:
        """Count one event a relay handed to ``sink``."""
        self.relay_outcomes.add(1, {"sink": sink, "outcome": outcome})


class ProviderCall:
    """One NICEPAY call under way: its span, its start, and the result code once known."""

    def __init__(self, span: Span, operation: str) -> None:
        """Time from now."""
        self.span = span
        self.operation = operation
        self.result_code = "unknown"
        self._started = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds since the call started."""
        return time.perf_counter() - self._started

    def finished(self, result_code: str, http_status: int | None) -> None:
        """Say how the call ended: NICEPAY's code (or the error's type) and the HTTP status."""
        self.result_code = result_code
        self.span.set_attribute("nicepay.result_code", result_code)
        if http_status is not None:
            self.span.set_attribute("http.response.status_code", http_status)
        if result_code != "0000":
            self.span.set_status(StatusCode.ERROR, result_code)


def note_http_status(status: int) -> None:
    """Put an HTTP answer's status on the current span (the call's, inside a provider call)."""
    trace.get_current_span().set_attribute("http.response.status_code", status)


def transaction_time(params: Mapping[str, str]) -> datetime | None:
    """The ``transDt``/``transTm`` of a notification as an aware time; ``None`` when absent or
    not a time (the fields are not verified, so a bad one only costs the measurement)."""
    day, clock = params.get("transDt", ""), params.get("transTm", "")
    if len(day) != 8 or len(clock) != 6 or not (day + clock).isdigit():
        return None
    try:
        return datetime.strptime(day + clock, "%Y%m%d%H%M%S").replace(tzinfo=_WIB)
    except ValueError:
        return None


def current_trace_carrier() -> str | None:
    """The W3C ``traceparent`` of the current span, to store beside work done later; ``None``
    when no span is current (no SDK, or outside any span)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get(_TRACEPARENT)


@contextmanager
def linked_span(
    name: str,
    carrier: str | None,
    *,
    telemetry: ServiceTelemetry | None = None,
    attributes: Mapping[str, str] | None = None,
) -> Iterator[Span]:
    """A new span (a root of its own) linked to the span ``carrier`` names, when it names one.

    For work a request left behind, e.g. the inquiry a notification caused: its span starts
    when the work runs, and the link leads back to the request that asked for it.
    """
    tracer = (telemetry or default_telemetry()).tracer
    with tracer.start_as_current_span(name, context=_NO_PARENT, links=_links_to(carrier)) as span:
        if attributes:
            span.set_attributes(dict(attributes))
        yield span


def _links_to(carrier: str | None) -> list[Link]:
    """A link to the span the ``traceparent`` ``carrier`` names; none when it names none."""
    if not carrier:
        return []
    context = trace.get_current_span(_PROPAGATOR.extract({_TRACEPARENT: carrier}))
    linked = context.get_span_context()
    return [Link(linked)] if linked.is_valid else []


_DEFAULT: list[ServiceTelemetry] = []
_DEFAULT_LOCK = threading.Lock()


def default_telemetry() -> ServiceTelemetry:
    """The instruments on the global providers, made once per process (on first use)."""
    if not _DEFAULT:
        with _DEFAULT_LOCK:
            if not _DEFAULT:
                _DEFAULT.append(ServiceTelemetry())
    return _DEFAULT[0]


__all__ = [
    "ProviderCall",
    "ServiceTelemetry",
    "current_trace_carrier",
    "default_telemetry",
    "linked_span",
    "note_http_status",
    "transaction_time",
]
