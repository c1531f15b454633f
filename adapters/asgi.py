"""A small ASGI app exposing the notification and callback endpoints.

A backend can mount it under any ASGI server or framework, or run it with ``ewallet-fsm serve``.
It reads at most :data:`~adapters.inbound.MAX_BODY_BYTES` of a body, hands the raw bytes to the
framework-agnostic handler, and writes its JSON reply. Nothing here interprets a payment.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from adapters.inbound import MAX_BODY_BYTES, InboundRequest

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

NOTIFICATION_PATH = "/nicepay/notification"
CALLBACK_PATH = "/nicepay/callback"
HEALTH_PATH = "/healthz"


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status and JSON body."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)


class InboundHandler(Protocol):
    """What the app needs: one method per endpoint, synchronous, raising nothing."""

    def handle_notification(self, request: InboundRequest) -> Reply:
        """Answer a NICEPAY notification."""
        ...

    def handle_callback(self, request: InboundRequest) -> Reply:
        """Answer the customer's browser returning from payment."""
        ...

    def handle_oversized(self, endpoint: str, request: InboundRequest, limit: int) -> Reply:
        """Answer (413) and record a request whose body exceeded ``limit`` and was not read."""
        ...


class NotificationApp:
    """ASGI application: ``POST`` notifications, ``GET``/``POST`` callbacks, a health check."""

    def __init__(
        self, handler: InboundHandler | None = None, *, max_body: int = MAX_BODY_BYTES
    ) -> None:
        """Serve ``handler``; bodies longer than ``max_body`` bytes get 413 unread.

        The handler may be attached later (``app.handler = ...``) when it needs the app's own
        address first; until then the endpoints answer 503.
        """
        self.handler = handler
        self._max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        reply = await self._dispatch(scope, receive)
        await _send_json(send, reply)

    async def _dispatch(self, scope: Scope, receive: Receive) -> Reply:
        path, method = scope.get("path", ""), scope.get("method", "GET")
        if path == HEALTH_PATH:
            return Reply(200, {"status": "ok"})
        if self.handler is None:
            return Reply(503, {"error": "not_ready", "message": "no handler attached yet"})
        routes: dict[str, tuple[set[str], Callable[[InboundRequest], Reply]]] = {
            NOTIFICATION_PATH: ({"POST"}, self.handler.handle_notification),
            CALLBACK_PATH: ({"GET", "POST"}, self.handler.handle_callback),
        }
        if path not in routes:
            return Reply(404, {"error": "not_found", "message": f"no endpoint at {path}"})
        methods, handle = routes[path]
        if method not in methods:
            return Reply(405, {"error": "method_not_allowed", "message": f"{method} {path}"})
        body = await _read_body(receive, self._max_body)
        if body is None:  # refused unread, but still recorded by the handler
            oversized = _request(scope, b"")
            endpoint = "notification" if path == NOTIFICATION_PATH else "callback"
            return await asyncio.to_thread(
                self.handler.handle_oversized, endpoint, oversized, self._max_body
            )
        request = _request(scope, body)
        return await asyncio.to_thread(handle, request)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _request(scope: Scope, body: bytes) -> InboundRequest:
    headers = {
        key.decode("latin-1").lower(): value.decode("latin-1")
        for key, value in scope.get("headers", [])
    }
    client = scope.get("client")
    return InboundRequest(
        body=body,
        content_type=headers.get("content-type", ""),
        query=scope.get("query_string", b"").decode("latin-1"),
        headers=headers,
        client_ip=client[0] if client else None,
    )


async def _send_json(send: Send, reply: Reply) -> None:
    payload = json.dumps(reply.body, ensure_ascii=False).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": reply.status,
            "headers": [
                (b"content-type", b"application/json; charset=utf-8"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
