"""The README's Prometheus setup, run as written: a payment moved on its engine, then the
exporter's endpoint scraped over HTTP shows the library's metrics, and no payment's id."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families

from fsm import SqlStore
from tests.adapters.inbound_rig import free_port

README = Path(__file__).resolve().parents[2] / "README.md"
MARKER = "<!-- prometheus-example:"


def readme_example() -> dict[str, Any]:
    """The README's example block, executed: its names."""
    text = README.read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", text[text.index(MARKER) :], re.DOTALL)
    assert code is not None
    names: dict[str, Any] = {"__name__": "readme_prometheus_example"}
    exec(compile(code.group(1), str(README), "exec"), names)  # noqa: S102 - our own README
    return names


def _ours(labels: dict[str, str]) -> Iterator[tuple[str, str]]:
    """The instrument's own labels, without the exporter's scope labels."""
    return ((k, v) for k, v in labels.items() if not k.startswith("otel_scope_"))


def test_the_readme_example_exports_the_library_metrics_to_prometheus(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'observed.sqlite3'}")
    store.create_schema()
    registry = CollectorRegistry()
    engine, _adapters = readme_example()["observed_engine"](store, registry)
    pid = engine.start("ewallet_payment", wallet="ovo", amount=1000, reference_no="ORD-PROM").id
    engine.fire(pid, "send_registration", actor="merchant", idempotency_key="reg")
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10.0)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        store.dispose()

    assert scraped.status_code == 200
    samples = {
        (sample.name, frozenset(_ours(sample.labels))): sample.value
        for family in text_string_to_metric_families(scraped.text)
        for sample in family.samples
    }
    applied = {"event": "send_registration", "flow": "ewallet_payment", "outcome": "applied"}
    assert samples["ewallet_fsm_transitions_total", frozenset(applied.items())] == 1.0
    waiting = {"flow": "ewallet_payment", "state": "registration_sent"}
    assert samples["ewallet_fsm_payments", frozenset(waiting.items())] == 1.0
    oldest = frozenset({"flow": "ewallet_payment"}.items())
    assert ("ewallet_fsm_unsettled_oldest_age_seconds", oldest) in samples
    assert pid not in scraped.text
    assert "ORD-PROM" not in scraped.text
