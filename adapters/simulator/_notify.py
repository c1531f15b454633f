"""Notifications to ``dbProcessUrl``: built, signed (T3), broken as armed, and sent by a worker.

Sending happens on a scheduler thread with httpx, so delays never block a response. Every attempt
(including the dropped ones) is recorded as a :class:`Delivery` for tests to inspect.
"""

from __future__ import annotations

import functools
import itertools
import json
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlencode

import httpx

from adapters.nicepay.tokens import link_enable_token, nicepay_timestamp, notification_token
from adapters.simulator._codes import CURRENCY, PAY_METHOD
from adapters.simulator._config import SimulatorConfig
from adapters.simulator._faults import Faults, NotificationFault
from adapters.simulator._ledger import Link, Transaction
from adapters.simulator._scheduler import Scheduler

USER_AGENT = "Jakarta Commons-HttpClient/3.1"
BodyFormat = Literal["form", "json"]


@dataclass(frozen=True)
class Notification:
    """One notification to send."""

    kind: str
    """``payment`` (status 0), ``reversal`` (status 1), ``link`` or ``manual``."""
    reference_no: str
    tx_id: str | None
    url: str
    fields: Mapping[str, str]
    body_format: BodyFormat


@dataclass(frozen=True)
class Delivery:
    """One delivery attempt, as the simulator made it."""

    kind: str
    reference_no: str
    tx_id: str | None
    url: str
    fields: Mapping[str, str]
    body_format: BodyFormat
    status_code: int | None
    """The merchant's HTTP status; ``None`` when dropped or when the request failed."""
    error: str | None = None
    dropped: bool = False
    copy: int = 0
    """0 for the first copy, 1, 2, ... for duplicates."""
    sent_at: datetime | None = None


def payment_fields(
    tx: Transaction, status: str, config: SimulatorConfig, when: datetime
) -> dict[str, str]:
    """The notification body for a transaction, signed with T3 over the registered amount."""
    stamp = nicepay_timestamp(tx.paid_at or when)
    return {
        "tXid": tx.tx_id,
        "referenceNo": tx.reference_no,
        "payMethod": PAY_METHOD,
        "amt": tx.amount,
        "iMid": config.imid,
        "currency": tx.fields.get("currency", CURRENCY),
        "goodsNm": tx.fields.get("goodsNm", ""),
        "billingNm": tx.fields.get("billingNm", ""),
        "transDt": stamp[:8],
        "transTm": stamp[8:],
        "matchCl": "1",
        "status": status,
        "mitraCd": tx.mitra_cd,
        "merchantToken": notification_token(config.imid, tx.tx_id, tx.amount, config.merchant_key),
    }


def link_fields(link: Link, config: SimulatorConfig, when: datetime) -> dict[str, str]:
    """The link notification body, signed with T4 (the link has no tXid or amount)."""
    stamp = nicepay_timestamp(when)
    phone = link.fields.get("billingPhone", "")
    fields = {
        "iMid": config.imid,
        "referenceNo": link.reference_no,
        "payMethod": PAY_METHOD,
        "mitraCd": "ASTR",
        "billingNm": link.fields.get("billingNm", ""),
        "billingPhone": phone,
        "status": "0",
        "transDt": stamp[:8],
        "transTm": stamp[8:],
        "merchantToken": link_enable_token(
            config.imid, link.reference_no, phone, config.merchant_key
        ),
    }
    if link.mandate and config.mandate_in in ("notification", "both"):
        fields[config.mandate_field] = link.mandate
    return fields


@dataclass(frozen=True)
class _Held:
    hold_id: int
    note: Notification
    copies: int


class Notifier:
    """Sends notifications through ``scheduler`` with ``http`` and records every attempt."""

    def __init__(
        self, config: SimulatorConfig, faults: Faults, scheduler: Scheduler, http: httpx.Client
    ) -> None:
        """Bind the notifier to its worker and HTTP client."""
        self._config = config
        self._faults = faults
        self._scheduler = scheduler
        self._http = http
        self._lock = threading.Condition()
        self._deliveries: list[Delivery] = []
        self._held: dict[str, list[_Held]] = {}
        self._hold_ids = itertools.count(1)

    @property
    def deliveries(self) -> tuple[Delivery, ...]:
        """Every delivery attempt so far, in order."""
        with self._lock:
            return tuple(self._deliveries)

    def wait(self, count: int, timeout: float) -> tuple[Delivery, ...]:
        """Wait until at least ``count`` attempts are recorded (or ``timeout`` passes)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._deliveries) < count and time.monotonic() < deadline:
                self._lock.wait(deadline - time.monotonic())
            return tuple(self._deliveries)

    def send(self, note: Notification) -> None:
        """Send ``note``, applying the next notification fault armed for its referenceNo."""
        fault = self._faults.take_notification(note.reference_no) or NotificationFault()
        note = self._broken(note, fault)
        if fault.drop:
            self._record(_delivery(note, None, dropped=True))
            return
        copies = 1 + fault.duplicate
        if fault.reorder:
            self._hold(note, copies)
            return
        self._schedule(note, copies, fault.delay)
        self._release(note.reference_no, fault.delay + self._config.reorder_gap)

    def callback_served(self, reference_no: str) -> None:
        """The browser was sent back to the merchant: held notifications may follow now."""
        self._release(reference_no, self._config.reorder_gap)

    def _broken(self, note: Notification, fault: NotificationFault) -> Notification:
        fields = dict(note.fields)
        if fault.forged_status is not None:
            fields["status"] = fault.forged_status
        if fault.forge_token:
            fields["merchantToken"] = secrets.token_hex(32)
        body_format = note.body_format
        if fault.json is not None:
            body_format = "json" if fault.json else "form"
        return replace(note, fields=fields, body_format=body_format)

    def _hold(self, note: Notification, copies: int) -> None:
        held = _Held(next(self._hold_ids), note, copies)
        with self._lock:
            self._held.setdefault(note.reference_no, []).append(held)
        self._scheduler.call_later(
            self._config.reorder_max_hold, lambda: self._release_one(note.reference_no, held)
        )

    def _release(self, reference_no: str, delay: float) -> None:
        with self._lock:
            held = self._held.pop(reference_no, [])
        for item in held:
            self._schedule(item.note, item.copies, delay)

    def _release_one(self, reference_no: str, held: _Held) -> None:
        with self._lock:
            queue = self._held.get(reference_no, [])
            if held not in queue:
                return
            queue.remove(held)
        self._schedule(held.note, held.copies, 0.0)

    def _schedule(self, note: Notification, copies: int, delay: float) -> None:
        for copy in range(copies):
            self._scheduler.call_later(delay, functools.partial(self._deliver, note, copy))

    def _deliver(self, note: Notification, copy: int) -> None:
        status_code, error = None, None
        content, headers = _body(note)
        try:
            response = self._http.post(note.url, content=content, headers=headers)
            status_code = response.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        self._record(_delivery(note, status_code, error=error, copy=copy))

    def _record(self, delivery: Delivery) -> None:
        with self._lock:
            self._deliveries.append(delivery)
            self._lock.notify_all()


def _delivery(
    note: Notification,
    status_code: int | None,
    *,
    error: str | None = None,
    dropped: bool = False,
    copy: int = 0,
) -> Delivery:
    return Delivery(
        kind=note.kind,
        reference_no=note.reference_no,
        tx_id=note.tx_id,
        url=note.url,
        fields=note.fields,
        body_format=note.body_format,
        status_code=status_code,
        error=error,
        dropped=dropped,
        copy=copy,
        sent_at=datetime.now(UTC),
    )


def _body(note: Notification) -> tuple[bytes, dict[str, str]]:
    headers = {"user-agent": USER_AGENT}
    if note.body_format == "json":
        headers["content-type"] = "application/json"
        return json.dumps(dict(note.fields)).encode(), headers
    headers["content-type"] = "application/x-www-form-urlencoded"
    return urlencode(dict(note.fields)).encode("ascii"), headers
