"""The notification handler followed by the status worker, for tests that read back what a
request led to.

The handler only records a request and asks for a status check; a worker runs the check later
(:class:`~adapters.reconcile.worker.StatusWorker`). :class:`WorkedHandler` runs a worker's rounds
right after each request it handles, as a deployment's worker would before anyone looks, so a
test asserts the request's whole effect, inquiry included. Tests of the request path alone use
:class:`~adapters.inbound.handler.NotificationHandler` itself.
"""

from __future__ import annotations

from typing import Any

from adapters.inbound.asgi import Reply
from adapters.inbound.handler import NotificationHandler
from adapters.inbound.parsing import InboundRequest
from adapters.reconcile.worker import StatusWorker
from adapters.service import PaymentService


class WorkedHandler(NotificationHandler):
    """A handler whose requests' status checks have run by the time it answers."""

    def __init__(self, service: PaymentService, **options: Any) -> None:
        super().__init__(service, **options)
        self.worker = StatusWorker(service)

    def handle_notification(self, request: InboundRequest) -> Reply:
        reply = super().handle_notification(request)
        self.worker.drain()
        return reply

    def handle_callback(self, request: InboundRequest) -> Reply:
        reply = super().handle_callback(request)
        self.worker.drain()
        return reply
