"""Serve an ASGI app with uvicorn on loopback, in a background thread, for the length of a block.

uvicorn comes with the ``simulator`` and ``server`` extras and is imported only when a server
starts, so the simulator's in-process transport works without it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import uvicorn

LOOPBACK = "127.0.0.1"
_START_TIMEOUT = 10.0


@contextmanager
def serve_app(app: Callable[..., Any], *, port: int = 0) -> Iterator[str]:
    """Serve ``app`` on ``127.0.0.1:port`` (0: any free port) and yield its base URL.

    The server stops, and its thread is joined, when the block exits.

    Raises:
        OSError: the port is taken.
        RuntimeError: the server did not start.
    """
    import uvicorn  # optional (the simulator and server extras): only serving needs it

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, port))
        server = uvicorn.Server(_config(app))
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="simulator-http", daemon=True
        )
        thread.start()
        try:
            _wait_started(server, thread)
            yield f"http://{LOOPBACK}:{sock.getsockname()[1]}"
        finally:
            server.should_exit = True
            thread.join(_START_TIMEOUT)
    finally:
        sock.close()


def _config(app: Callable[..., Any]) -> uvicorn.Config:
    import uvicorn  # see serve_app

    return uvicorn.Config(
        app,
        lifespan="off",
        ws="none",
        http="h11",
        loop="asyncio",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=1,
    )


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the loopback HTTP server did not start")
        time.sleep(0.01)
