"""Fault injection, armed per call: broken notifications, missing callbacks, failing responses.

A fault is armed for a ``referenceNo`` (notifications, callbacks) or a path suffix (responses) and
is used up by the next ``times`` matching calls (``times=None``: every call until cleared).
Faults on one path apply in the order they were armed.
"""

from __future__ import annotations

import json as _json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

_F = TypeVar("_F")


@dataclass(frozen=True)
class NotificationFault:
    """How the next notification for a transaction goes wrong."""

    duplicate: int = 0
    """Extra copies sent after the first one (``duplicate=2``: three deliveries)."""
    delay: float = 0.0
    """Seconds to wait before sending."""
    drop: bool = False
    """Never send it (the merchant sees only the browser callback)."""
    reorder: bool = False
    """Hold it until the callback redirect, or the next notification, has gone first."""
    forge_token: bool = False
    """Send a ``merchantToken`` that does not verify."""
    json: bool | None = None
    """Override the configured body format: ``True`` JSON, ``False`` form."""
    forged_status: str | None = None
    """Replace ``status`` while keeping a valid token (T3 does not cover it)."""


@dataclass(frozen=True)
class CallbackFault:
    """The browser is not sent back to ``callBackUrl`` (the customer closes the window)."""

    drop: bool = True


@dataclass(frozen=True)
class ResponseFault:
    """How the next response on a path goes wrong."""

    status: int | None = None
    """Answer with this HTTP status (and, without ``body``, an HTML error page)."""
    timeout: bool = False
    """Keep the connection open without an answer until the client gives up."""
    slow: float = 0.0
    """Seconds to wait before answering."""
    process: bool = False
    """Whether the request is carried out before the fault strikes (a lost response)."""
    body: bytes | None = None
    """Answer with these bytes instead (``status`` defaults to 200)."""
    content_type: str = "text/html; charset=utf-8"
    fields: Mapping[str, Any] | None = None
    """Replace these fields of the JSON answer (``None`` as a value: JSON ``null``)."""


class _Armed:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, list[tuple[object, int | None]]] = {}

    def arm(self, key: str, fault: object, times: int | None) -> None:
        if times is not None and times < 1:
            raise ValueError("times must be at least 1, or None for every call")
        with self._lock:
            self._faults.setdefault(key, []).append((fault, times))

    def take(self, match: Callable[[str], bool], kind: type[_F]) -> _F | None:
        with self._lock:
            for key, queue in self._faults.items():
                if not match(key):
                    continue
                for index, (fault, times) in enumerate(queue):
                    if isinstance(fault, kind):
                        _use(queue, index, fault, times)
                        return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()


def _check_response_fault(
    status: int | None,
    timeout: bool,
    slow: float,
    body: bytes | Mapping[str, Any] | None,
    fields: Mapping[str, Any] | None,
) -> None:
    lowest = 200 if body is not None else 400
    if status is not None and not lowest <= status <= 599:
        raise ValueError(f"status must be from {lowest} to 599")
    if body is not None and fields is not None:
        raise ValueError("give a body or fields to replace, not both")
    if status is None and body is None and fields is None and not timeout and slow <= 0:
        raise ValueError("give a status, a body, fields, timeout=True or slow=seconds")


def _body(body: bytes | Mapping[str, Any] | None) -> dict[str, Any]:
    if body is None or isinstance(body, bytes):
        return {"body": body}
    return {"body": _json.dumps(body).encode(), "content_type": "application/json"}


def _use(
    queue: list[tuple[object, int | None]], index: int, fault: object, times: int | None
) -> None:
    if times is None:
        return
    if times == 1:
        del queue[index]
    else:
        queue[index] = (fault, times - 1)


class Faults:
    """The simulator's fault switchboard (``sim.faults``)."""

    def __init__(self) -> None:
        """An empty switchboard: everything behaves."""
        self._armed = _Armed()

    def notification(
        self,
        reference_no: str,
        *,
        duplicate: int = 0,
        delay: float = 0.0,
        drop: bool = False,
        reorder: bool = False,
        forge_token: bool = False,
        json: bool | None = None,
        forged_status: str | None = None,
        times: int | None = 1,
    ) -> None:
        """Break the next ``times`` notifications for ``reference_no`` (see NotificationFault)."""
        if duplicate < 0 or delay < 0:
            raise ValueError("duplicate and delay must not be negative")
        fault = NotificationFault(duplicate, delay, drop, reorder, forge_token, json, forged_status)
        self._armed.arm(f"ref:{reference_no}", fault, times)

    def callback(self, reference_no: str, *, drop: bool = True, times: int | None = 1) -> None:
        """Do not send the browser back to ``callBackUrl`` (a notification-only payment)."""
        self._armed.arm(f"ref:{reference_no}", CallbackFault(drop), times)

    def response(
        self,
        path_suffix: str,
        *,
        status: int | None = None,
        timeout: bool = False,
        slow: float = 0.0,
        process: bool | None = None,
        body: bytes | Mapping[str, Any] | None = None,
        fields: Mapping[str, Any] | None = None,
        times: int | None = 1,
    ) -> None:
        """Break the next ``times`` responses on paths ending in ``path_suffix``.

        Args:
            path_suffix: e.g. ``"/inquiry"`` or ``"/direct/v2/registration"``.
            status: answer with this status: 4xx/5xx and an HTML body, or any with ``body``.
            timeout: answer nothing until the client disconnects (or ``timeout_hold`` passes).
            slow: wait this many seconds before answering.
            process: carry the request out first; by default all but ``status`` and ``body`` do.
            body: answer with these bytes, or this object as JSON: an answer NICEPAY's own
                checks would never give (a result code, a garbled or truncated body).
            fields: carry the request out, then answer its JSON with these fields replaced,
                e.g. ``{"status": "7"}`` for an inquiry reporting a code no table knows.
            times: how many calls the fault applies to; ``None`` for every call.

        Raises:
            ValueError: the arguments describe no fault, or one that cannot happen.
        """
        _check_response_fault(status, timeout, slow, body, fields)
        done = (status is None and body is None) if process is None else process
        if fields is not None and not done:
            raise ValueError("fields rewrite an answer: the request must be carried out")
        fault = ResponseFault(status, timeout, slow, done, fields=fields, **_body(body))
        self._armed.arm(f"path:{path_suffix}", fault, times)

    def clear(self) -> None:
        """Disarm every fault."""
        self._armed.clear()

    def take_notification(self, reference_no: str) -> NotificationFault | None:
        """Use up the next notification fault for ``reference_no``."""
        key = f"ref:{reference_no}"
        return self._armed.take(lambda k: k == key, NotificationFault)

    def take_callback(self, reference_no: str) -> CallbackFault | None:
        """Use up the next callback fault for ``reference_no``."""
        key = f"ref:{reference_no}"
        return self._armed.take(lambda k: k == key, CallbackFault)

    def take_response(self, path: str) -> ResponseFault | None:
        """Use up the next response fault whose suffix ends ``path``."""
        return self._armed.take(
            lambda k: k.startswith("path:") and path.endswith(k[5:]), ResponseFault
        )
