"""``ewallet-fsm unconfirmed``: outcomes the merchant has not confirmed to the customer.

From version 2 of the built-in flows no timer confirms an order on the merchant's behalf: a
payment paid, failed or expired (a link linked) waits for ``confirm_order`` (``confirm_link``).
This lists those still waiting a while after their last step; ``reconcile`` logs them too.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.cli._arguments import page_size, ranged
from adapters.cli._catalog import catalog
from adapters.cli._output import default_db, iso, open_existing, table, write, write_json
from adapters.cli._records import instance_json
from adapters.reconcile.unconfirmed import DEFAULT_WINDOW, unconfirmed

minutes = ranged(float, 0.0, 366 * 24 * 60.0, "a number of minutes")
"""An argument type: minutes, up to a year."""
_HEADERS = ("id", "flow", "state", "referenceNo", "last step (UTC)")


def register(subparsers: Any) -> None:
    """Add the unconfirmed command."""
    command = subparsers.add_parser(
        "unconfirmed",
        help="list outcomes (paid, failed, expired, linked) the merchant has not confirmed to "
        "the customer",
    )
    add_window_argument(command, "--after")
    command.add_argument(
        "--limit", type=page_size, default=100, help="at most this many (default: %(default)s)"
    )
    command.add_argument("--db", default=default_db(), help="database URL (default: %(default)s)")
    command.add_argument("--json", action="store_true", help="print JSON")
    command.set_defaults(handler=_unconfirmed)


def add_window_argument(parser: Any, flag: str) -> None:
    """The option saying how long after its last step an unconfirmed outcome is reported."""
    parser.add_argument(
        flag,
        type=minutes,
        default=DEFAULT_WINDOW.total_seconds() / 60,
        metavar="MINUTES",
        help="report outcomes unconfirmed this long after their last step (default: %(default)g)",
    )


def _unconfirmed(args: argparse.Namespace) -> int:
    with open_existing(args.db) as store:
        found = unconfirmed(
            store,
            catalog(),
            now=datetime.now(UTC),
            older_than=timedelta(minutes=args.after),
            limit=args.limit,
        )
    if args.json:
        write_json({"unconfirmed": [instance_json(instance) for instance in found]})
    elif not found:
        write("every outcome is confirmed")
    else:
        rows = [(i.id, i.flow, i.state, i.reference_no, iso(i.updated_at)) for i in found]
        write(table(_HEADERS, rows))
    return 0
