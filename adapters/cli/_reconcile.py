"""``ewallet-fsm reconcile``: act on every passed deadline, once or in a loop."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import httpx

from adapters.asgi import CALLBACK_PATH, NOTIFICATION_PATH
from adapters.cli._output import default_db, open_store, table, write
from adapters.cli._serve import IMID_ENV, KEY_ENV, NICEPAY_URL_ENV, credentials_from_env
from adapters.client import NicepayClient
from adapters.config import Environment
from adapters.deadlines import DeadlineRun, run_due
from adapters.service import PaymentService
from fsm.engine import Engine


def register(subparsers: Any) -> None:
    """Add the reconcile command."""
    reconcile = subparsers.add_parser(
        "reconcile",
        help=f"fire passed deadlines, asking NICEPAY where a status check is due "
        f"(${IMID_ENV}, ${KEY_ENV})",
    )
    reconcile.add_argument("--db", default=default_db(), help="database URL (default: %(default)s)")
    mode = reconcile.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="one pass, then exit (the default)")
    mode.add_argument("--loop", action="store_true", help="keep going until interrupted")
    reconcile.add_argument("--interval", type=float, default=5.0, help="seconds between passes")
    reconcile.add_argument("--limit", type=int, default=100, help="instances per pass")
    reconcile.add_argument(
        "--nicepay-url",
        default=os.environ.get(NICEPAY_URL_ENV, Environment.SANDBOX.value),
        help=f"NICEPAY base URL (default: ${NICEPAY_URL_ENV} or the sandbox)",
    )
    reconcile.set_defaults(handler=_reconcile)


def _reconcile(args: argparse.Namespace) -> int:
    credentials = credentials_from_env(args.nicepay_url)
    with (
        open_store(args.db) as store,
        httpx.Client(timeout=httpx.Timeout(15.0, connect=5.0)) as http,
    ):
        engine = Engine(store)
        service = PaymentService(
            engine,
            NicepayClient(http, credentials, clock=engine.clock),
            notification_url=NOTIFICATION_PATH,  # not used: reconciling registers nothing
            callback_url=CALLBACK_PATH,
        )
        while True:
            runs = run_due(service, limit=args.limit)
            _report(runs)
            if not args.loop:
                return 1 if any(run.error for run in runs) else 0
            time.sleep(args.interval)


def _report(runs: list[DeadlineRun]) -> None:
    if not runs:
        write("nothing due")
        return
    rows = [(r.instance_id, r.event, r.before, r.after, r.error or "") for r in runs]
    write(table(("instance", "deadline event", "was", "now", "error"), rows))
