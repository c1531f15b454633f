"""The status worker as the commands run it: ``reconcile`` after each pass, ``relay
--status-checks`` beside its rounds, and ``serve`` in a thread unless ``--no-status-worker``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from adapters.cli._catalog import catalog
from adapters.cli._output import write
from adapters.cli._serve import credentials_from_env
from adapters.inbound.asgi import CALLBACK_PATH, NOTIFICATION_PATH
from adapters.nicepay.client import NicepayClient
from adapters.reconcile.worker import StatusWorker, WorkRound
from adapters.service import PaymentService
from fsm.engine import Engine
from fsm.flows import EVENT_TYPES
from fsm.store.sql import SqlStore

WORKER_INTERVAL = 0.2
"""Seconds an idle worker waits before it looks for requested checks again."""


def service_on(store: SqlStore, http: httpx.Client, nicepay_url: str) -> PaymentService:
    """A payment service on ``store`` that asks NICEPAY at ``nicepay_url``, registering nothing.

    Raises:
        ConfigurationError: the merchant's credentials are not in the environment.
    """
    credentials = credentials_from_env(nicepay_url)
    engine = Engine(store, flows=catalog(), event_types=EVENT_TYPES)
    return PaymentService(
        engine,
        NicepayClient(http, credentials, clock=engine.clock),
        store=store,
        notification_url=NOTIFICATION_PATH,  # not used: nothing is registered here
        callback_url=CALLBACK_PATH,
    )


@contextmanager
def status_worker(store: SqlStore, nicepay_url: str) -> Iterator[StatusWorker]:
    """A worker on ``store``; its NICEPAY connections close when the block ends."""
    with httpx.Client(timeout=httpx.Timeout(15.0, connect=5.0)) as http:
        yield StatusWorker(service_on(store, http, nicepay_url))


def report_checks(done: WorkRound) -> None:
    """What a worker's rounds did, as one line."""
    write(f"status checks: {done.done} done, {done.retried} to retry, {done.abandoned} abandoned")
