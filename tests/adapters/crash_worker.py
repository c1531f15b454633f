"""A worker for the crash-recovery test: each of its payments' processes dies at a chosen point.

The test spawns :func:`run_crashes` once (``spawn`` imports this module by name in a fresh
interpreter). It imports the library once and then forks one child per :class:`Crash`, which is
far cheaper than spawning one interpreter per crash; forking is safe because the parent opens no
database connection, HTTP client or thread before it forks. Each child builds its own
``PaymentService`` on the shared database and the simulator's loopback URL, performs one
operation and sends ``SIGKILL`` to itself at the crash's point: no ``finally`` block, no
rollback and no atexit handler runs, as when a server is killed.

The points are found by wrapping the child's own store and HTTP client, never library code:

- ``intent_recorded``: the call's intent is committed and its request not yet sent;
- ``answer_received``: NICEPAY has processed the request and its answer arrived, unread;
- ``answer_applied``: the next transition after the answer is applied in its database
  transaction, whose commit was never sent;
- ``answer_committed``: what the answer led to is committed, and the intent not yet finished.
"""

from __future__ import annotations

import os
import signal
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from multiprocessing.connection import Connection
from typing import Any, NoReturn

import httpx
from pydantic import SecretStr

from adapters.nicepay.client import (
    CANCEL_PATH,
    INQUIRY_PATH,
    PAYMENT_PATH,
    REGISTRATION_PATH,
    NicepayClient,
)
from adapters.nicepay.config import InquiryRetry, NicepayCredentials
from adapters.reconcile.intents import Call
from adapters.reconcile.journal import CallJournal
from adapters.service import PaymentService
from adapters.simulator.rig import demo_order
from fsm.clock import Clock
from fsm.engine import Engine
from fsm.flows import FLOWS, Wallet
from fsm.model import Instance
from fsm.store.sql import SqlStore

CHILD_LIMIT = 20
"""Seconds a child may live; then SIGALRM ends it and the test reports it as hung."""

CANCEL_LEASE = timedelta(seconds=30)
"""How long a cancel holds its payment here: every process that cancels dies, and the default
(as long as the slowest live cancel) would keep its payment from the repair for ten minutes."""

CALL_PATH = {
    Call.REGISTRATION: REGISTRATION_PATH,
    Call.PAYMENT_LINKS: PAYMENT_PATH,
    Call.INQUIRY: INQUIRY_PATH,
    Call.CANCEL: CANCEL_PATH,
}
"""Where each call goes at NICEPAY (the payment links are the JSON payment step)."""


class KillPoint(StrEnum):
    """Where in a call's life the process dies."""

    INTENT_RECORDED = "intent_recorded"
    ANSWER_RECEIVED = "answer_received"
    ANSWER_APPLIED = "answer_applied"
    ANSWER_COMMITTED = "answer_committed"


class Operation(StrEnum):
    """What the dying process was doing."""

    START = "start"
    CHECK_STATUS = "check_status"
    CANCEL = "cancel"


@dataclass(frozen=True)
class Setting:
    """What every child needs to build its service: the database and where NICEPAY is."""

    db_url: str
    nicepay_url: str
    imid: str
    merchant_key: str
    notification_url: str
    callback_url: str


@dataclass(frozen=True)
class Crash:
    """One process's operation on one payment, and where in ``call`` it dies."""

    payment_id: str
    operation: Operation
    call: Call
    point: KillPoint
    wallet: Wallet | None = None
    """The order's wallet (the child starts the payment for ``start``)."""
    reference_no: str | None = None
    """The order's referenceNo."""
    cancel_amount: str | None = None
    """For ``cancel``: the amount, or ``None`` for a full cancel."""


@dataclass(frozen=True)
class Ending:
    """How a child ended: the signal that ended it and what it said before."""

    crash: Crash
    signal: int | None
    exit_code: int | None
    said: str


class Fuse:
    """Follows one child's calls and kills it at its crash's point."""

    def __init__(self, crash: Crash, report_fd: int) -> None:
        """Arm the fuse; ``report_fd`` is where the child says where it died."""
        self.crash = crash
        self._report_fd = report_fd
        self._intent: int | None = None
        self._answered = False

    def intent_recorded(self, call: str, intent_id: int) -> None:
        """The intent of ``call`` is committed."""
        if call == self.crash.call and self._intent is None:
            self._intent = intent_id
            self._die_at(KillPoint.INTENT_RECORDED)

    def answer_received(self, response: httpx.Response) -> None:
        """An answer arrived from NICEPAY; its body is still unread."""
        if self._intent is None or self._answered:
            return
        if response.request.url.path.endswith(CALL_PATH[self.crash.call]):
            self._answered = True
            self._die_at(KillPoint.ANSWER_RECEIVED)

    def transition_applied(self) -> None:
        """A transition is applied in a transaction that is about to commit."""
        if self._answered:
            self._die_at(KillPoint.ANSWER_APPLIED)

    def finishing(self, intent_id: int) -> None:
        """An intent is about to be finished."""
        if intent_id == self._intent:
            self._die_at(KillPoint.ANSWER_COMMITTED)

    def _die_at(self, point: KillPoint) -> None:
        if point is self.crash.point:
            die(self._report_fd, f"died at {point}")


def die(report_fd: int, last_words: str) -> NoReturn:
    """Say ``last_words`` on ``report_fd``, then die as a killed server does."""
    os.write(report_fd, last_words.encode())
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable: SIGKILL cannot be caught")  # pragma: no cover


class _WatchedUnit:
    """A store's unit that tells the fuse, before its commit, that it applied a transition.

    A proxy rather than a subclass: it works whatever context manager the store's unit is.
    """

    def __init__(self, unit: Any, fuse: Fuse) -> None:
        self._unit = unit
        self._fuse = fuse
        self._inner: Any = None
        self._applied = False

    def __enter__(self) -> _WatchedUnit:
        self._inner = self._unit.__enter__()
        return self

    def __exit__(self, *raised: Any) -> Any:
        _, error, _ = raised
        if error is None and self._applied:
            self._fuse.transition_applied()  # the commit is sent only by the inner unit's exit
        return self._unit.__exit__(*raised)

    def apply(self, *args: Any, **kwargs: Any) -> Instance:
        moved: Instance = self._inner.apply(*args, **kwargs)
        self._applied = True
        return moved

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class CrashingStore(SqlStore):
    """The child's store: tells the fuse about applied transitions."""

    def __init__(self, url: str, fuse: Fuse) -> None:
        """Open ``url`` (its schema already exists) with ``fuse`` attached."""
        super().__init__(url)
        self.fuse = fuse

    def unit(self) -> Any:
        """The library's unit, watched for an applied transition before it commits."""
        return _WatchedUnit(super().unit(), self.fuse)


class CrashingJournal(CallJournal):
    """The child's call journal: tells the fuse about intents."""

    def __init__(self, store: SqlStore, fuse: Fuse, clock: Clock) -> None:
        """Record calls in ``store`` with ``fuse`` attached."""
        super().__init__(store, clock=clock)
        self.fuse = fuse

    def record(self, instance_id: str, call: str, **fields: Any) -> int:
        """Record the intent as the library does; the fuse hears of it once it is committed."""
        intent_id = super().record(instance_id, call, **fields)
        self.fuse.intent_recorded(call, intent_id)
        return intent_id

    def finish(self, intent_id: int, **fields: Any) -> bool:
        """Finish the intent, unless the fuse kills the process first."""
        self.fuse.finishing(intent_id)
        return super().finish(intent_id, **fields)


def build_service(setting: Setting, fuse: Fuse) -> PaymentService:
    """The dying process's service: its own store and HTTP client, all watched by ``fuse``."""
    http = httpx.Client(
        timeout=httpx.Timeout(5.0),
        trust_env=False,
        event_hooks={"response": [fuse.answer_received]},
    )
    store = CrashingStore(setting.db_url, fuse)
    service = service_on(setting, Engine(store, flows=FLOWS), store, http)
    service.calls = CrashingJournal(store, fuse, service.engine.clock)
    return service


def service_on(
    setting: Setting, engine: Engine, store: SqlStore, http: httpx.Client
) -> PaymentService:
    """A payment service on ``engine`` that reaches the simulated NICEPAY through ``http``.

    Inquiries are tried once: the simulator always answers, and a retry would hide which
    request a kill point followed.
    """
    credentials = NicepayCredentials(
        imid=setting.imid,
        merchant_key=SecretStr(setting.merchant_key),
        base_url=setting.nicepay_url,
    )
    client = NicepayClient(
        http, credentials, clock=engine.clock, inquiry_retry=InquiryRetry(attempts=1)
    )
    return PaymentService(
        engine,
        client,
        store=store,
        notification_url=setting.notification_url,
        callback_url=setting.callback_url,
        cancel_lease=CANCEL_LEASE,
    )


def perform(service: PaymentService, crash: Crash) -> None:
    """The crash's operation, as a server would carry it out."""
    if crash.operation is Operation.START:
        order = demo_order(crash.reference_no or "", crash.wallet or Wallet.DANA)
        service.start_payment(order, payment_id=crash.payment_id)
    elif crash.operation is Operation.CHECK_STATUS:
        service.check_status(crash.payment_id)
    else:
        service.cancel(
            crash.payment_id,
            request_id=crash_request_id(crash),
            amount=crash.cancel_amount,
            reason="crash test",
        )


def crash_request_id(crash: Crash) -> str:
    """The id of the refund request a crash's cancel makes."""
    return f"crash-{crash.payment_id}"


def _live_and_die(setting: Setting, crash: Crash, report_fd: int) -> NoReturn:
    """The forked child: perform the operation; only the fuse may end it by SIGKILL."""
    signal.alarm(CHILD_LIMIT)  # a hung child ends by SIGALRM, which the test reports
    try:
        perform(build_service(setting, Fuse(crash, report_fd)), crash)
        os.write(report_fd, f"survived: never reached {crash.point}".encode())
    except BaseException:
        os.write(report_fd, traceback.format_exc().encode())
    os._exit(1)


def crash_in_child(setting: Setting, crash: Crash) -> Ending:
    """Fork a child that lives ``crash`` and dies; wait for it and say how it ended."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _live_and_die(setting, crash, write_fd)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as reader:  # EOF once the child is gone, however it died
        said = reader.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    return Ending(
        crash,
        signal=os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        exit_code=os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        said=said,
    )


def run_crashes(setting: Setting, crashes: Sequence[Crash], reports: Connection) -> None:
    """Live and die through every crash, one child at a time; send back how each ended."""
    try:
        reports.send([crash_in_child(setting, crash) for crash in crashes])
    except BaseException:  # the parent itself failed: the test fails on this text
        reports.send(traceback.format_exc())
    finally:
        reports.close()
