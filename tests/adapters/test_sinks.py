"""The relay's sinks against real receivers: a webhook server on loopback, and the RabbitMQ
broker on this machine (required when EWALLET_FSM_REQUIRE_BROKER=1, as in CI)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest

from adapters.errors import DeliveryFailed, WebhookSignatureError
from adapters.events import (
    SIGNATURE_HEADER,
    Backoff,
    RabbitMqSink,
    Relay,
    WebhookSink,
    sign_webhook,
    verify_webhook,
)
from fsm import ConfigurationError, InvalidInstanceData, ManualClock, SqlStore
from fsm.store.outbox import Delivery, Outbox
from tests.adapters.events_rig import event_engine, settle, webhook_receiver
from tests.fsm.conftest import T0

SECRET = "whsec-test-only"
BROKER_URL = os.environ.get("EWALLET_FSM_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
REQUIRE_BROKER = os.environ.get("EWALLET_FSM_REQUIRE_BROKER") == "1"
QUICK = Backoff(first=timedelta(seconds=1), longest=timedelta(seconds=1), max_attempts=5)


# --- webhook ---------------------------------------------------------------------------------


def test_the_webhook_receiver_gets_every_event_signed_at_least_once(store: SqlStore) -> None:
    clock = ManualClock(T0)
    settle(event_engine(store, clock), clock, 2)
    with webhook_receiver(statuses=[503]) as (url, received):
        sink = WebhookSink(url, SECRET, clock=clock)
        relay = Relay(store, sink, clock=clock, backoff=QUICK)
        first = relay.run_once()  # one event of each payment; the first answered 503
        assert (first.retried, first.delivered) == (1, 1)
        clock.advance(timedelta(seconds=1))
        assert relay.drain().delivered == 3
        sink.close()

    assert len(received.requests) == 5
    verified = [
        verify_webhook(body, headers[SIGNATURE_HEADER], SECRET, now=clock.now())
        for body, headers in received.requests
    ]
    stored = Outbox(store).events()
    assert {event.id for event in verified} == {event.id for event in stored}
    assert len([event for event in verified if event.id == verified[0].id]) == 2  # redelivered
    body, headers = received.requests[-1]
    assert headers["Ewallet-Event-Id"] == json.loads(body)["id"]
    assert headers["Content-Type"] == "application/json"
    assert Outbox(store).count(Delivery.DELIVERED) == 4


def test_an_unreachable_webhook_is_a_failed_attempt(store: SqlStore) -> None:
    clock = ManualClock(T0)
    settle(event_engine(store, clock), clock, 1)
    with webhook_receiver() as (url, _):
        closed = url  # the server is gone once the block ends
    sink = WebhookSink(closed, SECRET, timeout=2.0, clock=clock)
    assert Relay(store, sink, clock=clock, backoff=QUICK).run_once().retried == 1
    entry = Outbox(store).entries()[0]
    assert entry.last_error is not None
    assert entry.last_error.startswith("DeliveryFailed: no answer")
    assert SECRET not in entry.last_error


def signed(body: bytes, at: int) -> str:
    return sign_webhook(body, SECRET, at)


def test_verify_webhook_refuses_a_wrong_old_or_missing_signature() -> None:
    clock = ManualClock(T0)
    body = b'{"not": "checked before the signature"}'
    now = int(T0.timestamp())
    cases = {
        "no header": None,
        "malformed": "v1=abc",
        "a time in other digits": f"t=\u00b2{now},v1=abc",
        "other secret": sign_webhook(body, "another", now),
        "tampered body": signed(body + b" ", now),
        "too old": signed(body, now - 301),
        "from the future": signed(body, now + 301),
    }
    for name, header in cases.items():
        tampered = body if name != "tampered body" else body + b"!"
        with pytest.raises(WebhookSignatureError):
            verify_webhook(tampered, header, SECRET, now=clock.now())
    with pytest.raises(InvalidInstanceData):  # the signature holds; the body is no event
        verify_webhook(body, signed(body, now - 299), SECRET, now=clock.now())
    with pytest.raises(ConfigurationError):  # an unset secret verifies nothing
        verify_webhook(body, sign_webhook(body, "", now), "", now=clock.now())


def test_verify_webhook_accepts_any_of_several_signatures_within_the_tolerance(
    store: SqlStore,
) -> None:
    clock = ManualClock(T0)
    settle(event_engine(store, clock), clock, 1)
    event = Outbox(store).events()[0]
    body = event.to_json().encode()
    at = int(clock.now().timestamp()) - 60
    rotating = f"t={at},v1={'0' * 64},v1={signed(body, at).split('v1=')[1]}"
    assert verify_webhook(body, rotating, SECRET, now=clock.now()) == event
    with pytest.raises(WebhookSignatureError):
        verify_webhook(body, rotating, SECRET, now=clock.now(), tolerance=timedelta(seconds=30))


def test_a_webhook_sink_needs_an_http_url_and_a_secret() -> None:
    with pytest.raises(ConfigurationError):
        WebhookSink("ftp://127.0.0.1/x", SECRET)
    with pytest.raises(ConfigurationError):
        WebhookSink("http://127.0.0.1/x", "")
    with pytest.raises(ConfigurationError) as bad_port:
        WebhookSink("http://user:s3cr@127.0.0.1:s3cr/x", SECRET)
    assert "s3cr" not in str(bad_port.value)


# --- RabbitMQ --------------------------------------------------------------------------------


@pytest.fixture
def broker_queue() -> Iterator[str]:
    """A fresh queue name on the running broker, deleted afterwards."""
    pika = pytest.importorskip("pika")
    try:
        connection = pika.BlockingConnection(pika.URLParameters(BROKER_URL))
    except pika.exceptions.AMQPError as error:
        message = f"RabbitMQ unreachable at {BROKER_URL.split('@')[-1]} ({type(error).__name__})"
        if REQUIRE_BROKER:
            pytest.fail(message + "; EWALLET_FSM_REQUIRE_BROKER=1 requires it")
        pytest.skip(message)
    queue = f"ewallet.test.{uuid.uuid4().hex[:12]}"
    yield queue
    channel = connection.channel()
    channel.queue_delete(queue=queue)
    connection.close()


def drained(queue: str) -> list[tuple[dict[str, object], object]]:
    """Every message on ``queue``: its body and properties, acknowledged."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(BROKER_URL))
    channel = connection.channel()
    messages = []
    while True:
        method, properties, body = channel.basic_get(queue=queue, auto_ack=True)
        if method is None:
            break
        messages.append((json.loads(body), properties))
    connection.close()
    return messages


def test_rabbitmq_gets_every_event_as_a_persistent_confirmed_message(
    store: SqlStore, broker_queue: str
) -> None:
    clock = ManualClock(T0)
    ids = settle(event_engine(store, clock), clock, 2)
    sink = RabbitMqSink(BROKER_URL, queue=broker_queue)
    assert Relay(store, sink, clock=clock).drain().delivered == 4
    sink.close()

    messages = drained(broker_queue)
    stored = Outbox(store).events()
    by_round = sorted(stored, key=lambda e: (e.type != "payment.paid", ids.index(e.payment_id)))
    assert [body["id"] for body, _ in messages] == [event.id for event in by_round]
    for body, properties in messages:
        assert properties.delivery_mode == 2  # type: ignore[attr-defined]
        assert properties.message_id == body["id"]  # type: ignore[attr-defined]
        assert properties.type == body["type"]  # type: ignore[attr-defined]
    assert "guest" not in sink.name


def test_an_unreachable_broker_is_a_failed_attempt_and_a_later_one_delivers(
    store: SqlStore, broker_queue: str
) -> None:
    clock = ManualClock(T0)
    settle(event_engine(store, clock), clock, 1)
    down = RabbitMqSink("amqp://guest:guest@127.0.0.1:1/%2F", queue=broker_queue)
    relay = Relay(store, down, clock=clock, backoff=QUICK)
    assert relay.run_once().retried == 1
    assert "guest" not in (Outbox(store).entries()[0].last_error or "")
    with pytest.raises(DeliveryFailed):
        down.deliver(Outbox(store).events()[0])

    clock.advance(timedelta(seconds=1))
    up = RabbitMqSink(BROKER_URL, queue=broker_queue)
    assert Relay(store, up, clock=clock).drain().delivered == 2
    up.close()
    assert len(drained(broker_queue)) == 2


def test_a_rabbitmq_sink_needs_an_amqp_url() -> None:
    pytest.importorskip("pika")
    with pytest.raises(ConfigurationError):
        RabbitMqSink("http://127.0.0.1:5672/")
    with pytest.raises(ConfigurationError) as unquoted:  # a "/" in the password, not encoded
        RabbitMqSink("amqp://guest:s3cr/tpw@127.0.0.1/")
    assert "s3cr" not in str(unquoted.value)
