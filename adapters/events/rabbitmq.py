"""Events to RabbitMQ, through pika, each confirmed by the broker before it counts as delivered.

The sink declares a durable queue, publishes each event as a persistent message (delivery mode
2) with publisher confirms on, and ``mandatory`` set: the publish returns only once the broker
has taken the message (for a durable queue, written it to disk), and raises when the broker
refuses it or no queue takes it, so the relay tries again. RabbitMQ was chosen over Redis
Streams because its confirms cover persistence; a Redis that keeps nothing on disk (as the one
on this project's machines) would lose acknowledged events on a restart.

Each message carries the event id as ``message_id`` (consumers deduplicate by it), its type as
``type``, and the event's JSON as the body. Install the extra: ``pip install
'ewallet-fsm[rabbitmq]'``.
"""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import urlsplit

from adapters.errors import DeliveryFailed
from fsm.errors import ConfigurationError
from fsm.events import Event

DEFAULT_QUEUE = "ewallet.events"


def _pika() -> Any:
    try:
        import pika
    except ImportError:
        raise ConfigurationError(
            "the RabbitMQ sink needs pika: pip install 'ewallet-fsm[rabbitmq]'"
        ) from None
    return pika


class RabbitMqSink:
    """Publishes each event to one durable queue, waiting for the broker's confirm."""

    def __init__(self, url: str, *, queue: str = DEFAULT_QUEUE) -> None:
        """Publish through the broker at ``url`` (``amqp://user:password@host:5672/vhost``).

        The connection opens at the first event and is opened again after a failure.

        Raises:
            ConfigurationError: pika is not installed, or the URL is not ``amqp(s)://``.
        """
        self._pika = _pika()
        try:  # the URL holds the password: no error may quote it
            parts = urlsplit(url)
            port = parts.port or 5672
            if parts.scheme not in {"amqp", "amqps"} or not parts.hostname:
                raise ValueError
            self._parameters = self._pika.URLParameters(url)
        except ValueError:
            raise ConfigurationError(
                "a RabbitMQ URL must be amqp:// or amqps:// with a host (and a numeric port; "
                "a password's reserved characters percent-encoded)"
            ) from None
        self.queue = queue
        self.name = f"rabbitmq:{parts.hostname}:{port}/{queue}"
        self._connection: Any = None
        self._channel: Any = None

    def deliver(self, event: Event) -> None:
        """Publish the event and wait for the broker's confirm.

        Raises:
            DeliveryFailed: the broker is unreachable, refused the message, or routed it nowhere.
        """
        pika = self._pika
        properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=event.id,
            type=event.type,
        )
        try:
            channel = self._open()
            channel.basic_publish(
                exchange="",
                routing_key=self.queue,
                body=event.to_json().encode(),
                properties=properties,
                mandatory=True,
            )
        except (pika.exceptions.UnroutableError, pika.exceptions.NackError):
            raise DeliveryFailed("the broker did not take the message", sink=self.name) from None
        except pika.exceptions.AMQPError as error:
            self.close()
            raise DeliveryFailed(
                f"broker unreachable: {type(error).__name__}", sink=self.name
            ) from None

    def close(self) -> None:
        """Close the connection (a later event opens another)."""
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(self._pika.exceptions.AMQPError):  # already going
                connection.close()

    def _open(self) -> Any:
        if self._channel is not None and self._channel.is_open:
            return self._channel
        self.close()
        self._connection = self._pika.BlockingConnection(self._parameters)
        channel = self._connection.channel()
        channel.queue_declare(queue=self.queue, durable=True)
        channel.confirm_delivery()
        self._channel = channel
        return channel


__all__ = ["DEFAULT_QUEUE", "RabbitMqSink"]
