"""A small ASGI app exposing the notification and callback endpoints.

A backend can mount it under any ASGI server or framework, under a prefix too (it honours the
scope's ``root_path``, as Starlette's and FastAPI's ``mount`` set it), or run it with
``ewallet-fsm serve``.
It reads at most :data:`~adapters.inbound.parsing.MAX_BODY_BYTES` of a body, and waits at most
:data:`BODY_TIMEOUT` for it, hands the raw bytes to the framework-agnostic handler, and writes its
JSON reply. Nothing here interprets a payment.

The client's address is the connection's peer. ``X-Forwarded-For`` is read only when the peer is
one of the ``trusted_proxies``, and then the last address in it that is not a trusted proxy is
the client: anyone can write the header, only the proxy's own entry can be believed. Serve the
app with the server's own proxy-header handling off (uvicorn: ``proxy_headers=False``), since
uvicorn by default believes the header from loopback before the app sees the request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from adapters.inbound.parsing import MAX_BODY_BYTES, InboundRequest
from adapters.inbound.redact import redact

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

NOTIFICATION_PATH = "/nicepay/notification"
CALLBACK_PATH = "/nicepay/callback"
HEALTH_PATH = "/healthz"
BODY_TIMEOUT = 10.0
"""Seconds a request body may take to arrive whole; real notifications take milliseconds."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status and a JSON body, or an HTML page."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)
    headers: tuple[tuple[str, str], ...] = ()
    """Headers besides the content type and length, e.g. ``("retry-after", "30")``."""
    html: str | None = None
    """An HTML page sent instead of ``body`` (a browser's answer)."""


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

    def handle_stalled(self, endpoint: str, request: InboundRequest, seconds: float) -> Reply:
        """Answer (408) and record a request whose body did not arrive within ``seconds``."""
        ...


class NotificationApp:
    """ASGI application: ``POST`` notifications, ``GET``/``POST`` callbacks, a health check."""

    def __init__(
        self,
        handler: InboundHandler | None = None,
        *,
        max_body: int = MAX_BODY_BYTES,
        body_timeout: float = BODY_TIMEOUT,
        trusted_proxies: Sequence[str] = (),
    ) -> None:
        """Serve ``handler``; bodies longer than ``max_body`` bytes get 413 unread.

        The handler may be attached later (``app.handler = ...``) when it needs the app's own
        address first; until then the endpoints answer 503.

        Args:
            handler: answers the endpoints.
            max_body: the longest body read, in bytes.
            body_timeout: seconds a body may take to arrive whole; a slower one gets 408.
            trusted_proxies: networks whose ``X-Forwarded-For`` is believed (none by default).

        Raises:
            ValueError: a trusted proxy is not a network.
        """
        self.handler = handler
        self._max_body = max_body
        self._body_timeout = body_timeout
        self._proxies = [ipaddress.ip_network(net, strict=False) for net in trusted_proxies]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            reply = await self._dispatch(scope, receive)
        except Exception as error:  # the handler promises not to raise; never a bare 500 page
            logger.error(  # the type and a blanked message only: it may quote a request
                "inbound request failed",
                extra={"error": type(error).__name__, "reason": redact(str(error))[:300]},
            )
            reply = Reply(500, {"error": "InternalError", "message": "the request failed"})
        await _send(send, reply)

    async def _dispatch(self, scope: Scope, receive: Receive) -> Reply:
        path, method = route_path(scope), scope.get("method", "GET")
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
        chunks: list[bytes] = []
        endpoint = "notification" if path == NOTIFICATION_PATH else "callback"
        try:
            async with asyncio.timeout(self._body_timeout):
                complete = await _read_body(receive, self._max_body, chunks)
        except TimeoutError:  # refused with what arrived unread, but recorded by the handler
            stalled = self._request(scope, b"".join(chunks))
            return await asyncio.to_thread(
                self.handler.handle_stalled, endpoint, stalled, self._body_timeout
            )
        if not complete:  # refused unread, but still recorded by the handler
            oversized = self._request(scope, b"")
            return await asyncio.to_thread(
                self.handler.handle_oversized, endpoint, oversized, self._max_body
            )
        request = self._request(scope, b"".join(chunks))
        return await asyncio.to_thread(handle, request)

    def _request(self, scope: Scope, body: bytes) -> InboundRequest:
        headers = {
            key.decode("latin-1").lower(): value.decode("latin-1")
            for key, value in scope.get("headers", [])
        }
        client = scope.get("client")
        peer = client[0] if client else None
        return InboundRequest(
            body=body,
            content_type=headers.get("content-type", ""),
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            client_ip=client_address(peer, headers.get("x-forwarded-for"), self._proxies),
        )


def route_path(scope: Scope) -> str:
    """The request's path below where the app is mounted (``root_path``).

    Servers and frameworks give ``path`` either whole, the mount point included (as the ASGI
    specification and Starlette's ``Mount`` do), or already without it; both are taken.
    """
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "").rstrip("/")
    if root and (path == root or path.startswith(root + "/")):
        return path[len(root) :] or "/"
    return path


async def _read_body(receive: Receive, limit: int, chunks: list[bytes]) -> bool:
    """Read the body into ``chunks``; false when it grew past ``limit`` (the rest unread)."""
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return True
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return False
        chunks.append(chunk)
        if not message.get("more_body", False):
            return True


def client_address(
    peer: str | None, forwarded_for: str | None, trusted_proxies: Sequence[Network]
) -> str | None:
    """The client's address: the peer, unless a trusted proxy forwarded the request.

    From a trusted peer, ``X-Forwarded-For`` is read from its end, skipping trusted proxies:
    the first other address is the one the nearest trusted proxy saw connect. Anything before
    it was written by the client and proves nothing.
    """
    if not trusted_proxies or not forwarded_for or not _within(peer, trusted_proxies):
        return peer
    for hop in reversed([part.strip() for part in forwarded_for.split(",")]):
        if not _within(hop, trusted_proxies):
            return hop or peer
    return peer


def _within(address: str | None, networks: Sequence[Network]) -> bool:
    try:
        parsed = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(parsed in network for network in networks)


async def _send(send: Send, reply: Reply) -> None:
    if reply.html is not None:
        payload, content_type = reply.html.encode("utf-8"), b"text/html; charset=utf-8"
    else:
        payload = json.dumps(reply.body, ensure_ascii=False).encode("utf-8")
        content_type = b"application/json; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": reply.status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(payload)).encode()),
                *(
                    (name.encode("latin-1"), value.encode("latin-1"))
                    for name, value in reply.headers
                ),
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
