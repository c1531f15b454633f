"""The adapters' telemetry from real runs, read by the SDK's in-memory readers: a payment paid
through the simulator on loopback gives NICEPAY call spans and durations by result code, an
inbound span and a lag per notification, payments per state back to zero and one time to
settle, and no payment id, reference or tXid among the metric attributes; the reconciler and
the relay count their outcomes; a span's identity carried as a ``traceparent`` links the work
it caused; an inbound span is a root linked to its caller's ``traceparent``, whose sampled flag
decides nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace import StatusCode

from adapters.errors import ProviderError
from adapters.events import Backoff, CallableSink, Relay
from adapters.nicepay.config import InquiryRetry
from adapters.reconcile.recovery import Reconciler
from adapters.simulator import CustomerAction
from adapters.simulator.rig import merchant_rig
from adapters.telemetry import (
    ServiceTelemetry,
    current_trace_carrier,
    linked_span,
    transaction_time,
)
from fsm import ManualClock, SqlStore
from fsm.engine import Engine
from fsm.flows import FLOWS
from tests.adapters.e2e_rig import Rig, sim_config
from tests.adapters.events_rig import Recorder, event_engine, settle
from tests.fsm.conftest import T0
from tests.telemetry_rig import Collected, attributes

RETRY = InquiryRetry(attempts=3, base_delay=0.02, max_delay=0.1)


@pytest.fixture
def collected() -> Iterator[Collected]:
    found = Collected()
    yield found
    found.close()


@contextmanager
def measured_rig(path: Path, collected: Collected) -> Iterator[Rig]:
    """The demo's merchant and simulator, the engine and adapters measured into ``collected``."""
    store = SqlStore(f"sqlite:///{path / 'merchant.sqlite3'}")
    store.create_schema()
    engine = Engine(store, flows=FLOWS, telemetry=collected.engine())
    try:
        with merchant_rig(
            engine, store, sim_config(), inquiry_retry=RETRY, telemetry=collected.service()
        ) as merchant:
            yield Rig(merchant, engine)
    finally:
        store.dispose()


def wait_for(state: str, rig: Rig, payment_id: str) -> None:
    deadline = time.monotonic() + 10.0  # the rig's longest wait, as its own tests use
    while rig.engine.get(payment_id).state != state:
        assert time.monotonic() < deadline, rig.engine.get(payment_id).state
        time.sleep(0.02)


def test_a_payment_paid_through_the_simulator_is_measured(
    tmp_path: Path, collected: Collected
) -> None:
    with measured_rig(tmp_path, collected) as rig:
        started = rig.start("measured", "ovo")
        rig.browse(started)
        rig.deliveries(rig.ref("measured"), 1)
        wait_for("paid", rig, started.instance.id)
        payment = rig.engine.get(started.instance.id)

    calls = [span for span in collected.spans() if span.name.startswith("nicepay ")]
    by_name = {span.name for span in calls}
    assert {"nicepay registration", "nicepay inquiry"} <= by_name
    for span in calls:
        assert span.attributes is not None
        assert span.attributes["nicepay.result_code"] == "0000"
        assert span.attributes["http.response.status_code"] == 200
    durations = {
        (p.attributes or {}).get("operation"): p.count
        for p in collected.histogram("ewallet_fsm.provider.duration")
    }
    assert durations == {
        operation: sum(1 for span in calls if span.name == f"nicepay {operation}")
        for operation in durations
    }
    assert {
        dict(p.attributes or {})["result_code"]
        for p in collected.histogram("ewallet_fsm.provider.duration")
    } == {"0000"}

    [notification] = collected.spans("inbound notification")
    assert (notification.attributes or {})["http.response.status_code"] == 200
    [lag] = collected.histogram("ewallet_fsm.notification.lag")
    assert (dict(lag.attributes or {}), lag.count) == ({"wallet": "ovo"}, 1)

    assert set(collected.values("ewallet_fsm.payments").values()) == {0}
    [settled] = collected.histogram("ewallet_fsm.settle.duration")
    assert (dict(settled.attributes or {})["state"], settled.count) == ("paid", 1)

    ids = {payment.id, payment.reference_no, payment.tx_id}
    assert None not in ids
    assert not ids & set(collected.attribute_values())


def test_each_status_check_links_back_to_the_request_that_asked_for_it(
    tmp_path: Path, collected: Collected
) -> None:
    with measured_rig(tmp_path, collected) as rig:
        started = rig.start("linked", "ovo")
        rig.browse(started)
        rig.deliveries(rig.ref("linked"), 1)
        wait_for("paid", rig, started.instance.id)

    requests = {
        span.context.span_id: span for span in collected.spans() if span.name.startswith("inbound ")
    }
    checks = collected.spans("status check")
    assert checks, sorted({s.name for s in collected.spans()})
    for check in checks:
        [link] = check.links
        asked = requests[link.context.span_id]  # the notification's, or a browser return's
        assert check.context.trace_id != asked.context.trace_id  # a root of its own
    inquiries = [
        span
        for span in collected.spans("nicepay inquiry")
        if span.parent is not None and span.parent.span_id in {c.context.span_id for c in checks}
    ]
    assert inquiries, "the inquiry runs inside its check's span"


def test_a_refused_call_has_its_result_code_on_its_span_and_duration(
    tmp_path: Path, collected: Collected
) -> None:
    with measured_rig(tmp_path, collected) as rig:
        started = rig.start("refused", "ovo")
        tx_id, reference = started.instance.tx_id, rig.ref("refused")
        assert tx_id is not None
        with pytest.raises(ProviderError) as refused:
            rig.service.client.inquiry(tx_id, reference, "999")  # not the registered amount

    code = refused.value.provider_code
    assert code is not None
    assert code != "0000"
    last = [s for s in collected.spans("nicepay inquiry") if s.attributes is not None][-1]
    assert last.attributes is not None
    assert last.attributes["nicepay.result_code"] == code
    assert last.status.status_code is StatusCode.ERROR
    counts = {
        frozenset((p.attributes or {}).items()): p.count
        for p in collected.histogram("ewallet_fsm.provider.duration")
    }
    assert counts[attributes(operation="inquiry", result_code=code)] >= 1


def test_the_reconciler_counts_what_it_did(tmp_path: Path, collected: Collected) -> None:
    with measured_rig(tmp_path, collected) as rig:
        started = rig.start("ignored", "ovo", CustomerAction.ABANDON)
        later = rig.engine.clock.now() + timedelta(days=1)  # every deadline has passed
        done = Reconciler(rig.service, telemetry=collected.service()).run_once(now=later)
        assert [run.instance_id for run in done.deadlines] == [started.instance.id]
        [run] = done.deadlines

    counted = collected.values("ewallet_fsm.reconcile.outcomes")
    assert counted == {attributes(kind="deadline", outcome=run.event): 1}


def test_the_relay_counts_each_outcome(store: SqlStore, collected: Collected) -> None:
    clock = ManualClock(T0)
    settle(event_engine(store, clock), clock, 1)
    failing = {"on": True}
    recorder = Recorder(fail=lambda event: failing["on"])
    backoff = Backoff(first=timedelta(seconds=10), longest=timedelta(minutes=1), max_attempts=3)
    relay = Relay(
        store, CallableSink(recorder), clock=clock, backoff=backoff, telemetry=collected.service()
    )
    assert relay.run_once().retried == 1
    failing["on"] = False
    clock.advance(timedelta(minutes=1))
    relay.drain()

    sink = relay.sink.name
    assert collected.values("ewallet_fsm.relay.outcomes") == {
        attributes(sink=sink, outcome="retried"): 1,
        attributes(sink=sink, outcome="delivered"): 2,
    }


def test_a_span_carried_as_a_traceparent_is_linked_from_the_work_it_caused(
    collected: Collected,
) -> None:
    telemetry = collected.service()
    assert current_trace_carrier() is None  # no span is current
    with telemetry.tracer.start_as_current_span("inbound notification") as request:
        carrier = current_trace_carrier()
    asked = request.get_span_context()
    assert carrier is not None
    assert carrier.startswith(f"00-{asked.trace_id:032x}-{asked.span_id:016x}-")  # then flags

    with linked_span("inquiry", carrier, telemetry=telemetry, attributes={"operation": "x"}):
        pass
    with linked_span("inquiry", None, telemetry=telemetry):
        pass
    with linked_span("inquiry", "not-a-traceparent", telemetry=telemetry):
        pass

    linked, unlinked, garbled = collected.spans("inquiry")
    [link] = linked.links
    assert (link.context.trace_id, link.context.span_id) == (asked.trace_id, asked.span_id)
    assert linked.context is not None
    assert linked.context.trace_id != asked.trace_id
    assert linked.parent is None  # a root of its own, not a child of whatever ran it
    assert (linked.attributes or {})["operation"] == "x"
    assert (unlinked.links, garbled.links) == ((), ())


def test_a_notification_time_is_read_in_jakarta_and_junk_is_no_time() -> None:
    assert transaction_time({"transDt": "20261203", "transTm": "170000"}) == datetime(
        2026, 12, 3, 10, 0, tzinfo=UTC
    )
    for junk in ({}, {"transDt": "20261203"}, {"transDt": "20261340", "transTm": "170000"}):
        assert transaction_time(junk) is None
    assert transaction_time({"transDt": "2026-12-", "transTm": "17:00:"}) is None


CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"  # sampled
"""A caller's ``traceparent``: trace 0af7..., span b7ad..., its sampled flag set."""


def test_an_inbound_span_is_a_root_linked_to_the_callers_traceparent(
    collected: Collected,
) -> None:
    telemetry = collected.service()
    with telemetry.inbound_span("notification", {"traceparent": CALLER}):
        pass
    with telemetry.inbound_span("callback", {"traceparent": "garbled"}):
        pass

    [linked] = collected.spans("inbound notification")
    [link] = linked.links
    assert (f"{link.context.trace_id:032x}", f"{link.context.span_id:016x}") == (
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
    )
    assert linked.parent is None  # not the caller's child
    assert linked.context is not None
    assert linked.context.trace_id != link.context.trace_id  # a trace of our own
    [garbled] = collected.spans("inbound callback")
    assert (garbled.parent, garbled.links) == (None, ())


def test_a_callers_sampled_flag_does_not_force_an_inbound_span_to_be_recorded() -> None:
    exporter = InMemorySpanExporter()
    tracers = TracerProvider(sampler=ParentBased(ALWAYS_OFF))  # samples what its parent did
    tracers.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = ServiceTelemetry(tracer_provider=tracers)
    with telemetry.inbound_span("notification", {"traceparent": CALLER}) as span:
        assert not span.is_recording()
    tracers.shutdown()
    assert exporter.get_finished_spans() == ()
