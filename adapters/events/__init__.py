"""Events out: the relay that delivers the outbox (:mod:`fsm.events`), and its sinks.

- :class:`Relay` claims due events, delivers each at least once, in order per payment, with an
  exponential backoff, and marks an event dead after its last attempt.
- :class:`CallableSink` calls a Python function; :class:`WebhookSink` POSTs to an HTTP service,
  signed (check with :func:`verify_webhook`); :class:`RabbitMqSink` publishes to RabbitMQ with
  publisher confirms (the ``rabbitmq`` extra).

A consumer deduplicates by the event's id: a relay that dies after delivering, before recording
it, delivers the event again.
"""

from adapters.events.rabbitmq import DEFAULT_QUEUE, RabbitMqSink
from adapters.events.relay import Backoff, Relay, RelayRound
from adapters.events.sinks import CallableSink, Sink
from adapters.events.webhook import (
    DEFAULT_TOLERANCE,
    SIGNATURE_HEADER,
    WebhookSink,
    sign_webhook,
    verify_webhook,
)

__all__ = [
    "DEFAULT_QUEUE",
    "DEFAULT_TOLERANCE",
    "SIGNATURE_HEADER",
    "Backoff",
    "CallableSink",
    "RabbitMqSink",
    "Relay",
    "RelayRound",
    "Sink",
    "WebhookSink",
    "sign_webhook",
    "verify_webhook",
]
