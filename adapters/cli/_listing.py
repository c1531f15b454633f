"""``ewallet-fsm list``: stored instances, filtered, newest first, a page at a time."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from adapters.cli._arguments import page_size
from adapters.cli._catalog import catalog
from adapters.cli._output import (
    aware_time,
    default_db,
    iso,
    open_existing,
    table,
    write,
    write_json,
)
from adapters.cli._records import instance_json
from fsm.errors import InvalidInstanceData
from fsm.flows import Wallet
from fsm.store.listing import InstanceFilter, InstancePage

_HEADERS = ("id", "flow", "wallet", "state", "version", "referenceNo", "created (UTC)")


def register(subparsers: Any) -> None:
    """Add the list command."""
    listing = subparsers.add_parser(
        "list", help="list stored instances, newest first, filtered and a page at a time"
    )
    listing.add_argument("--state", help="only instances in this state")
    listing.add_argument("--flow", choices=sorted(catalog()), help="only instances of this flow")
    listing.add_argument("--wallet", choices=sorted(Wallet), help="only this wallet's")
    listing.add_argument("--reference", metavar="REFERENCE_NO", help="only this referenceNo")
    listing.add_argument(
        "--since", metavar="TIME", help="created at or after an ISO time with zone"
    )
    listing.add_argument("--due", action="store_true", help="only those whose deadline has passed")
    listing.add_argument(
        "--limit", type=page_size, default=50, help="instances per page (default: %(default)s)"
    )
    listing.add_argument("--cursor", help="the next page, as the previous page's cursor says")
    listing.add_argument("--db", default=default_db(), help="database URL (default: %(default)s)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_list)


def _list(args: argparse.Namespace) -> int:
    where = InstanceFilter(
        state=_known_state(args.state, args.flow),
        flow=args.flow,
        wallet=args.wallet,
        reference_no=args.reference,
        since=aware_time(args.since, "--since"),
        due_at=datetime.now(UTC) if args.due else None,
    )
    with open_existing(args.db) as store:
        page = store.page_instances(where, limit=args.limit, cursor=args.cursor)
    if args.json:
        write_json(
            {
                "instances": [instance_json(i) for i in page.instances],
                "more": page.more,
                "next_cursor": page.next_cursor,
            }
        )
    else:
        _print(page)
    return 0


def _known_state(state: str | None, flow: str | None) -> str | None:
    """``--state``, refused when no flow (or not the ``--flow`` given) has such a state."""
    if state is None:
        return None
    flows = [catalog()[flow]] if flow else list(catalog().values())
    if any(state in f.state_map for f in flows):
        return state
    if flow:
        states = ", ".join(catalog()[flow].state_map)
        raise InvalidInstanceData(f"--state {state!r}: flow {flow} has none; its states: {states}")
    raise InvalidInstanceData(f"--state {state!r}: no built-in flow has such a state")


def _print(page: InstancePage) -> None:
    if not page.instances:
        write("no instances match")
        return
    rows = [
        (i.id, i.flow, i.wallet, i.state, i.version, i.reference_no, iso(i.created_at))
        for i in page.instances
    ]
    write(table(_HEADERS, rows))
    if page.next_cursor:
        write()
        write(f"more instances match: add --cursor {page.next_cursor}")
