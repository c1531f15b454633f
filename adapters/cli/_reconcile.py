"""``ewallet-fsm reconcile``: repair abandoned calls and act on passed deadlines, once or looping.

Any number of replicas may run it against one database: each pass claims the instances it works
on, so no two reconcilers ever ask NICEPAY about one payment at the same time. After each pass
it runs the status checks notifications and browser returns asked for
(:class:`~adapters.reconcile.worker.StatusWorker`), which workers claim the same way.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from adapters.cli._arguments import seconds
from adapters.cli._catalog import catalog
from adapters.cli._events import add_sink_arguments, hide_sink_secrets, relay_for, report_round
from adapters.cli._logs import add_log_format
from adapters.cli._output import default_db, open_store, table, write
from adapters.cli._serve import IMID_ENV, KEY_ENV, NICEPAY_URL_ENV, credentials_from_env
from adapters.cli._status import report_checks, service_on
from adapters.cli._unconfirmed import add_window_argument
from adapters.events import Relay
from adapters.nicepay.config import Environment
from adapters.reconcile.deadlines import DEFAULT_LEASE
from adapters.reconcile.intents import INTENT_GRACE
from adapters.reconcile.recovery import LONGEST_HOLD, LONGEST_UNHEARD, ReconcilePass, Reconciler
from adapters.reconcile.unconfirmed import UnconfirmedWatch
from adapters.reconcile.worker import StatusWorker, WorkRound
from fsm.store.sql import SqlStore

logger = logging.getLogger(__name__)

LOOP_CHECK_ROUNDS = 5
"""Rounds of status checks a looping reconciler runs per pass (a round claims a batch)."""


def register(subparsers: Any) -> None:
    """Add the reconcile command."""
    reconcile = subparsers.add_parser(
        "reconcile",
        help=f"repair calls a stopped process left unanswered and fire passed deadlines, asking "
        f"NICEPAY where a status check is due (${IMID_ENV}, ${KEY_ENV})",
    )
    reconcile.add_argument("--db", default=default_db(), help="database URL (default: %(default)s)")
    mode = reconcile.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="one pass, then exit (the default)")
    mode.add_argument("--loop", action="store_true", help="keep going until interrupted")
    reconcile.add_argument("--interval", type=seconds, default=5.0, help="seconds between passes")
    reconcile.add_argument("--limit", type=int, default=100, help="instances per pass")
    reconcile.add_argument(
        "--grace",
        type=seconds,
        default=INTENT_GRACE.total_seconds(),
        help="seconds after which an unanswered call counts as abandoned (default: %(default)s)",
    )
    reconcile.add_argument(
        "--lease",
        type=seconds,
        default=DEFAULT_LEASE.total_seconds(),
        help="seconds a claim outlives a reconciler that stopped (default: %(default)s)",
    )
    reconcile.add_argument(
        "--longest-hold",
        type=seconds,
        default=LONGEST_HOLD.total_seconds(),
        help="seconds from its record a cancel may hold its payment; a longer hold is reported "
        "for a person (default: %(default)s)",
    )
    reconcile.add_argument(
        "--longest-unheard",
        type=seconds,
        default=LONGEST_UNHEARD.total_seconds(),
        help="seconds from its record a refund's repair asks for a total NICEPAY never states, "
        "then closes it in doubt for settle-refund (default: %(default)s)",
    )
    reconcile.add_argument(
        "--nicepay-url",
        default=os.environ.get(NICEPAY_URL_ENV, Environment.SANDBOX.value),
        help=f"NICEPAY base URL (default: ${NICEPAY_URL_ENV} or the sandbox)",
    )
    reconcile.add_argument(
        "--json", action="store_true", help="print each pass as one line of JSON"
    )
    # outcomes the merchant left unconfirmed are logged as a warning, every ten minutes at most
    add_window_argument(reconcile, "--unconfirmed-after")
    add_sink_arguments(reconcile, required=False)  # with --sink, each pass also relays events
    add_log_format(reconcile)
    reconcile.set_defaults(handler=_reconcile)


def _reconcile(args: argparse.Namespace) -> int:
    credentials_from_env(args.nicepay_url)  # missing ones are reported before anything opens
    hide_sink_secrets()
    with (
        open_store(args.db) as store,
        httpx.Client(timeout=httpx.Timeout(15.0, connect=5.0)) as http,
        relay_or_none(args, store) as relay,
    ):
        service = service_on(store, http, args.nicepay_url)
        reconciler = Reconciler(
            service,
            grace=timedelta(seconds=args.grace),
            lease=timedelta(seconds=args.lease),
            limit=args.limit,
            longest_hold=timedelta(seconds=args.longest_hold),
            longest_unheard=timedelta(seconds=args.longest_unheard),
        )
        worker = StatusWorker(service)
        watch = UnconfirmedWatch(
            store, catalog(), older_than=timedelta(minutes=args.unconfirmed_after)
        )
        while True:
            try:
                done = reconciler.run_once()
                # A loop bounds the checks of one pass, so that requests keeping checks due
                # cannot hold deadlines, repairs and the relay back.
                checked = worker.drain(rounds=LOOP_CHECK_ROUNDS if args.loop else 1000)
                watch.check(datetime.now(UTC))
            except Exception:  # a database outage must not end the loop; --once reports it
                if not args.loop:
                    raise
                logger.exception("reconcile pass failed; trying again after the interval")
            else:
                if args.json:
                    _report_json(done, checked)
                else:
                    _report(done, checked)
                if relay is not None:
                    relayed = relay.drain()
                    if not args.json:
                        report_round(relayed)
                if not args.loop:
                    return 1 if done.failed else 0
            time.sleep(args.interval)


@contextmanager
def relay_or_none(args: argparse.Namespace, store: SqlStore) -> Iterator[Relay | None]:
    """The relay ``--sink`` asks for, or none."""
    if args.sink is None:
        yield None
        return
    with relay_for(args, store) as relay:
        yield relay


def _report_json(done: ReconcilePass, checked: WorkRound) -> None:
    """One pass as one line of JSON, so a looping reconciler writes JSON Lines."""
    data = {
        "repairs": [dataclasses.asdict(r) for r in done.repairs],
        "deadlines": [dataclasses.asdict(r) for r in done.deadlines],
        "status_checks": dataclasses.asdict(checked),
        "failed": done.failed,
    }
    write(json.dumps(data, ensure_ascii=False, separators=(",", ":")))


def _report(done: ReconcilePass, checked: WorkRound) -> None:
    if checked.claimed:
        report_checks(checked)
    if done.repairs:
        rows = [
            (r.instance_id, r.call, r.before, r.after, r.error or r.outcome) for r in done.repairs
        ]
        write(table(("instance", "abandoned call", "was", "now", "outcome"), rows))
    if not done.deadlines:
        write("nothing due")
        return
    runs = done.deadlines
    rows = [(r.instance_id, r.event, r.before, r.after, r.error or "") for r in runs]
    write(table(("instance", "deadline event", "was", "now", "error"), rows))
