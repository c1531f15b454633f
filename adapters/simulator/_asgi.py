"""A raw ASGI layer: requests and responses as values, a sync handler, and response faults.

Handlers are plain functions ``Request -> Response`` run in a worker thread, because the engine
and SQLite are synchronous; the event loop only reads bodies, sleeps and writes answers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from adapters.simulator._faults import Faults, ResponseFault

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Handler = Callable[["Request"], "Response"]

SIMULATOR_HEADER = "x-nicepay-simulator"
"""Marks every simulator response, so a scripted browser knows when it has left NICEPAY."""


@dataclass(frozen=True)
class Request:
    """One HTTP request as received."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    base_url: str
    """``http://host:port`` as the client addressed the server."""

    @property
    def is_json(self) -> bool:
        """Whether the body is JSON (by content type, else by its first character)."""
        if "json" in self.headers.get("content-type", ""):
            return True
        return self.body.lstrip()[:1] == b"{"

    def fields(self) -> dict[str, str]:
        """Query and body parameters (JSON or form), body winning; JSON scalars as their text.

        Raises:
            ValueError: the body is neither a JSON object nor form data.
        """
        fields = dict(self.query)
        if self.body.strip():
            fields.update(self._json_fields() if self.is_json else self._form_fields())
        return fields

    def _json_fields(self) -> dict[str, str]:
        # Numbers keep their exact text, so "10000" and 10000 hash alike but 10000.0 does not.
        document = json.loads(self.body, parse_int=str, parse_float=str)
        if not isinstance(document, dict):
            raise ValueError("JSON body is not an object")
        return {str(k): _text(v) for k, v in document.items() if v is not None}

    def _form_fields(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode("utf-8"), keep_blank_values=True))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


@dataclass(frozen=True)
class Response:
    """One HTTP response to send."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @classmethod
    def json(cls, data: Mapping[str, Any], status: int = 200) -> Response:
        """A JSON answer."""
        body = json.dumps(data, separators=(",", ":")).encode()
        return cls(status, body, (("content-type", "application/json"),))

    @classmethod
    def html(cls, page: str, status: int = 200) -> Response:
        """An HTML page."""
        return cls(status, page.encode(), (("content-type", "text/html; charset=utf-8"),))

    @classmethod
    def redirect(cls, location: str) -> Response:
        """A 303 See Other to ``location``, which the browser fetches with GET."""
        return cls(303, b"", (("location", location),))


class AsgiApp:
    """The ASGI callable: reads the request, applies response faults, runs the handler."""

    def __init__(self, handler: Handler, faults: Faults, *, timeout_hold: float) -> None:
        """Serve ``handler`` with the faults armed in ``faults``."""
        self._handler = handler
        self._faults = faults
        self._timeout_hold = timeout_hold

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection scope (HTTP only)."""
        if scope["type"] != "http":
            return
        request = await _read(scope, receive)
        fault = self._faults.take_response(request.path)
        response = await self._answer(request, fault)
        if fault is not None and fault.timeout:
            await _wait_for_disconnect(receive, self._timeout_hold)
            response = Response(504, b"Gateway Timeout", (("content-type", "text/plain"),))
        if fault is not None and fault.slow > 0:
            await asyncio.sleep(fault.slow)
        await _write(send, response)

    async def _answer(self, request: Request, fault: ResponseFault | None) -> Response:
        return await asyncio.to_thread(answer, self._handler, request, fault)


def answer(handler: Handler, request: Request, fault: ResponseFault | None) -> Response:
    """What ``handler`` answers to ``request``, as ``fault`` changes it.

    Timeouts and slowness belong to the connection: each server applies those itself.
    """
    if fault is not None and not fault.process:
        return _fault_response(fault)
    response = handler(request)
    if fault is None:
        return response
    if fault.status is not None or fault.body is not None:
        return _fault_response(fault)
    if fault.fields is not None:
        return _rewritten(response, fault.fields)
    return response


def _fault_response(fault: ResponseFault) -> Response:
    if fault.body is not None:
        return Response(fault.status or 200, fault.body, (("content-type", fault.content_type),))
    status = fault.status or 503
    return Response.html(f"<html><body><h1>{status}</h1>Service error</body></html>", status)


def _rewritten(response: Response, fields: Mapping[str, Any]) -> Response:
    """The JSON object in ``response`` with ``fields`` replaced; any other answer as it is."""
    try:
        document = json.loads(response.body)
    except ValueError:
        return response
    if not isinstance(document, dict):
        return response
    return Response.json({**document, **fields}, status=response.status)


async def _read(scope: Scope, receive: Receive) -> Request:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    query = dict(parse_qsl(scope.get("query_string", b"").decode(), keep_blank_values=True))
    host = headers.get("host") or "{}:{}".format(*scope["server"])
    return Request(
        scope["method"], scope["path"], query, headers, b"".join(chunks), f"http://{host}"
    )


async def _wait_for_disconnect(receive: Receive, hold: float) -> None:
    try:
        async with asyncio.timeout(hold):
            while (await receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        return


async def _write(send: Send, response: Response) -> None:
    headers = [(k.encode(), v.encode()) for k, v in response.headers]
    headers.append((SIMULATOR_HEADER.encode(), b"1"))
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
