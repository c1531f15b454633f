"""``ewallet-fsm relay`` and ``ewallet-fsm outbox``: deliver the outbox's events, and look at it.

A sink is named on the command line; its secrets come from the environment, never from the
arguments, which other users of the machine can read:

- ``log``: each event as one line of JSON on standard output;
- ``webhook=URL``: POSTed to ``URL``, signed with ``$EWALLET_FSM_WEBHOOK_SECRET``;
- ``rabbitmq``: published to the broker at ``$EWALLET_FSM_AMQP_URL``, queue ``--queue``.

With ``--status-checks`` the relay also runs the status checks inbound requests asked for
(:class:`~adapters.reconcile.worker.StatusWorker`), asking NICEPAY with the merchant's
credentials from the environment, as ``reconcile`` does.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any
from urllib.parse import urlsplit

from adapters.cli._arguments import seconds
from adapters.cli._output import default_db, iso, open_store, table, write, write_json
from adapters.cli._serve import NICEPAY_URL_ENV, credentials_from_env, hide_configured_secrets
from adapters.cli._status import WORKER_INTERVAL, report_checks, status_worker
from adapters.events import (
    DEFAULT_QUEUE,
    Backoff,
    CallableSink,
    RabbitMqSink,
    Relay,
    RelayRound,
    Sink,
    WebhookSink,
)
from adapters.nicepay.config import Environment
from adapters.reconcile.worker import StatusWorker
from fsm.clock import SystemClock
from fsm.errors import ConfigurationError
from fsm.events import Event
from fsm.store.outbox import Delivery, Outbox, OutboxEntry
from fsm.store.sql import SqlStore

WEBHOOK_SECRET_ENV = "EWALLET_FSM_WEBHOOK_SECRET"  # noqa: S105 - the variable's name
AMQP_URL_ENV = "EWALLET_FSM_AMQP_URL"


def register(subparsers: Any) -> None:
    """Add the relay and outbox commands."""
    relay = subparsers.add_parser(
        "relay", help="deliver the outbox's events to a sink (log, webhook=URL, rabbitmq)"
    )
    relay.add_argument("--db", default=default_db(), help="database URL (default: %(default)s)")
    mode = relay.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="deliver what is due, then exit")
    mode.add_argument("--loop", action="store_true", help="keep going until interrupted")
    relay.add_argument("--interval", type=seconds, default=1.0, help="seconds between idle rounds")
    relay.add_argument(
        "--status-checks",
        action="store_true",
        help="also run the requested status checks ($EWALLET_FSM_IMID, $EWALLET_FSM_MERCHANT_KEY)",
    )
    relay.add_argument(
        "--nicepay-url",
        default=os.environ.get(NICEPAY_URL_ENV, Environment.SANDBOX.value),
        help=f"NICEPAY base URL, for --status-checks (default: ${NICEPAY_URL_ENV} or the sandbox)",
    )
    add_sink_arguments(relay, required=True)
    relay.set_defaults(handler=_relay)

    outbox = subparsers.add_parser(
        "outbox", help="list pending and dead events, or make one pending again"
    )
    outbox.add_argument("--db", default=default_db(), help="database URL (default: %(default)s)")
    outbox.add_argument(
        "--status",
        choices=[str(status) for status in Delivery],
        action="append",
        help="only events in this state (repeatable; default: pending and dead)",
    )
    outbox.add_argument("--limit", type=int, default=100, help="events per state listed")
    outbox.add_argument(
        "--redeliver",
        metavar="EVENT_ID",
        help="make this event pending again (refused for an unreadable one)",
    )
    outbox.add_argument("--json", action="store_true", help="print JSON")
    outbox.set_defaults(handler=_outbox)


def add_sink_arguments(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """``--sink`` and the relay's settings, for ``relay`` and for ``reconcile``."""
    parser.add_argument(
        "--sink",
        required=required,
        help=f"log | webhook=URL (secret: ${WEBHOOK_SECRET_ENV}) | rabbitmq (${AMQP_URL_ENV})",
    )
    parser.add_argument("--queue", default=DEFAULT_QUEUE, help="RabbitMQ queue (%(default)s)")
    parser.add_argument(
        "--max-attempts", type=int, default=Backoff.max_attempts, help="attempts before dead"
    )


@contextmanager
def relay_for(args: argparse.Namespace, store: SqlStore) -> Iterator[Relay]:
    """The relay ``--sink`` names, on ``store``; its connections close when the block ends."""
    sink = sink_from(args.sink, queue=args.queue)
    if args.max_attempts < 1:
        raise ConfigurationError("--max-attempts must be at least 1")
    try:
        yield Relay(store, sink, backoff=Backoff(max_attempts=args.max_attempts))
    finally:
        close = getattr(sink, "close", None)
        if close is not None:
            close()


def sink_from(spec: str, *, queue: str = DEFAULT_QUEUE) -> Sink:
    """The sink ``spec`` names.

    Raises:
        ConfigurationError: an unknown sink, or its secret missing from the environment.
    """
    kind, _, target = spec.partition("=")
    if kind == "log":
        return CallableSink(_print_event, name="log")
    if kind == "webhook" and target:
        secret = os.environ.get(WEBHOOK_SECRET_ENV, "")
        if not secret:
            raise ConfigurationError(f"set ${WEBHOOK_SECRET_ENV} to sign the webhook's requests")
        return WebhookSink(target, secret)
    if kind == "rabbitmq" and not target:
        url = os.environ.get(AMQP_URL_ENV, "")
        if not url:
            raise ConfigurationError(f"set ${AMQP_URL_ENV} to the RabbitMQ broker's URL")
        return RabbitMqSink(url, queue=queue)
    raise ConfigurationError(f"--sink: expected log, webhook=URL or rabbitmq, not {kind!r}")


def _print_event(event: Event) -> None:
    write(event.to_json())


def hide_sink_secrets(logger: logging.Logger | None = None) -> None:
    """Blank in every log line (of ``logger``'s handlers, the root's by default) the configured
    secrets: the merchant's, the audit keys, the webhook's secret and the broker's password."""
    broker = urlsplit(os.environ.get(AMQP_URL_ENV, "")).password or ""
    hide_configured_secrets(os.environ.get(WEBHOOK_SECRET_ENV, ""), broker, logger=logger)


def _relay(args: argparse.Namespace) -> int:
    hide_sink_secrets()
    if args.status_checks:
        credentials_from_env(args.nicepay_url)  # reported before anything opens
    with (
        open_store(args.db) as store,
        relay_for(args, store) as relay,
        status_worker_or_none(args, store) as worker,
    ):
        if not args.loop:
            if worker is not None:
                report_checks(worker.drain())
            report_round(relay.drain())
            return 0
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with worker.running(interval=WORKER_INTERVAL) if worker is not None else nullcontext():
            try:
                relay.run(stop, interval=args.interval)
            except KeyboardInterrupt:
                stop.set()
    return 0


@contextmanager
def status_worker_or_none(
    args: argparse.Namespace, store: SqlStore
) -> Iterator[StatusWorker | None]:
    """The status worker ``--status-checks`` asks for, or none."""
    if not args.status_checks:
        yield None
        return
    with status_worker(store, args.nicepay_url) as worker:
        yield worker


def report_round(done: RelayRound) -> None:
    """What a relay's rounds did, as one line."""
    write(f"relay: {done.delivered} delivered, {done.retried} to retry, {done.dead} dead")


def _outbox(args: argparse.Namespace) -> int:
    with open_store(args.db) as store:
        outbox = Outbox(store)
        if args.redeliver:
            if not outbox.redeliver(args.redeliver, now=SystemClock().now()):
                raise ConfigurationError(f"no event {args.redeliver!r} in the outbox")
            write(f"{args.redeliver}: pending again")
            return 0
        wanted = [Delivery(status) for status in args.status or (Delivery.PENDING, Delivery.DEAD)]
        entries = [entry for s in wanted for entry in outbox.entries(status=s, limit=args.limit)]
    if args.json:
        write_json([_entry_json(entry) for entry in entries])
    elif entries:
        write(
            table(("event", "type", "payment", "status", "attempts", "last error"), _rows(entries))
        )
    else:
        write("no events")
    return 0


UNREADABLE = "(unreadable)"
"""The type and payment shown for a row whose stored body is not an event."""


def _rows(entries: list[OutboxEntry]) -> list[tuple[Any, ...]]:
    return [
        (
            e.event_id,
            e.event.type if e.event else UNREADABLE,
            e.event.payment_id if e.event else UNREADABLE,
            e.status,
            e.attempts,
            e.last_error or "",
        )
        for e in entries
    ]


def _entry_json(entry: OutboxEntry) -> dict[str, Any]:
    return {
        "event_id": entry.event_id,
        "event": entry.event.as_dict() if entry.event else None,  # None: unreadable
        "status": str(entry.status),
        "attempts": entry.attempts,
        "next_attempt_at": iso(entry.next_attempt_at),
        "last_error": entry.last_error,
        "delivered_at": iso(entry.delivered_at),
    }
