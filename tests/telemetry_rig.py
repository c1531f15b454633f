"""In-memory OpenTelemetry providers for one test, and readers of what they collected.

Each test builds its own providers and hands them to what it runs (``telemetry=``), so tests
never set the process-wide providers, which OpenTelemetry lets a process set only once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from adapters.telemetry import ServiceTelemetry
from fsm.telemetry import EngineTelemetry

Point = NumberDataPoint | HistogramDataPoint


@dataclass
class Collected:
    """A test's providers, with what their readers hold."""

    reader: InMemoryMetricReader = field(default_factory=InMemoryMetricReader)
    exporter: InMemorySpanExporter = field(default_factory=InMemorySpanExporter)

    def __post_init__(self) -> None:
        self.meters = MeterProvider(metric_readers=[self.reader])
        self.tracers = TracerProvider()
        self.tracers.add_span_processor(SimpleSpanProcessor(self.exporter))

    def engine(self) -> EngineTelemetry:
        """The engine's instruments on these providers."""
        return EngineTelemetry(meter_provider=self.meters, tracer_provider=self.tracers)

    def service(self) -> ServiceTelemetry:
        """The adapters' instruments on these providers."""
        return ServiceTelemetry(meter_provider=self.meters, tracer_provider=self.tracers)

    def points(self) -> dict[str, list[Point]]:
        """Every data point collected now, by instrument name."""
        found: dict[str, list[Point]] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    kept = found.setdefault(metric.name, [])
                    kept.extend(p for p in metric.data.data_points if isinstance(p, Point))
        return found

    def values(self, name: str) -> dict[frozenset[tuple[str, Any]], float]:
        """A counter's values by attribute set (non-zero ones, for an up-down counter too)."""
        return {
            frozenset((point.attributes or {}).items()): point.value
            for point in self.points().get(name, [])
            if isinstance(point, NumberDataPoint)
        }

    def histogram(self, name: str) -> list[HistogramDataPoint]:
        """A histogram's data points."""
        return [p for p in self.points().get(name, []) if isinstance(p, HistogramDataPoint)]

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        """The finished spans (named ``name``, when given), in the order they ended."""
        every = list(self.exporter.get_finished_spans())
        return [s for s in every if name is None or s.name == name]

    def attribute_values(self) -> Iterator[str]:
        """Every attribute value of every data point collected (to look for ids among them)."""
        for points in self.points().values():
            for point in points:
                for value in (point.attributes or {}).values():
                    yield str(value)

    def close(self) -> None:
        """Shut both providers down."""
        self.meters.shutdown()
        self.tracers.shutdown()


def attributes(**values: str) -> frozenset[tuple[str, Any]]:
    """An attribute set, as :meth:`Collected.values` keys them."""
    return frozenset(values.items())


__all__ = ["Collected", "Point", "attributes"]
