"""The simulator in-process, as an ``httpx.MockTransport``: a client's unit tests need no socket.

Requests go straight to the simulator's handler, with the same response faults as on loopback: a
``timeout`` fault raises ``httpx.ReadTimeout`` once the request was carried out (unless armed with
``process=False``), and a ``slow`` one sleeps before answering.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qsl

import httpx

from adapters.simulator._asgi import SIMULATOR_HEADER, Handler, Request, Response, answer
from adapters.simulator._faults import Faults


def mock_transport(handler: Handler, faults: Faults) -> httpx.MockTransport:
    """A transport that serves ``handler`` in-process, breaking answers as ``faults`` say."""

    def handle(request: httpx.Request) -> httpx.Response:
        received = _request(request)
        fault = faults.take_response(received.path)
        response = answer(handler, received, fault)
        if fault is not None and fault.timeout:
            raise httpx.ReadTimeout("no answer before the client gave up", request=request)
        if fault is not None and fault.slow > 0:
            time.sleep(fault.slow)
        return _response(response)

    return httpx.MockTransport(handle)


def _request(request: httpx.Request) -> Request:
    url = request.url
    return Request(
        method=request.method,
        path=url.path,
        query=dict(parse_qsl(url.query.decode("ascii"), keep_blank_values=True)),
        headers={name.lower(): value for name, value in request.headers.items()},
        body=request.read(),
        base_url=f"{url.scheme}://{url.netloc.decode('ascii')}",
    )


def _response(response: Response) -> httpx.Response:
    headers = [*response.headers, (SIMULATOR_HEADER, "1")]
    return httpx.Response(response.status, headers=headers, content=response.body)
