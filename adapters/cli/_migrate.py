"""``ewallet-fsm migrate``: bring a database's schema to this release's, or move in-flight
instances of a flow to its next version.

``migrate`` alone creates or upgrades the schema (safe to repeat). ``migrate FLOW --from N --to
N+1`` moves every unfinished instance of FLOW on version N by the flow's declared migration, each
as a recorded operator step; ``--dry-run`` only lists them.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from sqlalchemy import make_url

from adapters.cli._catalog import catalog
from adapters.cli._output import default_db, open_existing, table, write, write_json
from fsm.engine import Engine
from fsm.flows import EVENT_TYPES
from fsm.model import MigratedInstance
from fsm.store.sql import SqlStore


def register(subparsers: Any) -> None:
    """Add the migrate command."""
    migrate = subparsers.add_parser(
        "migrate",
        help="upgrade the schema (safe to repeat), or with FLOW move instances to a new version",
    )
    migrate.add_argument(
        "flow", nargs="?", choices=sorted(catalog()), help="move this flow's instances"
    )
    migrate.add_argument("--from", dest="from_version", type=int, metavar="N")
    migrate.add_argument("--to", dest="to_version", type=int, metavar="M", help="N+1")
    migrate.add_argument("--dry-run", action="store_true", help="only list what would move")
    migrate.add_argument("--by", help="who migrates, recorded with each step (default: $USER)")
    migrate.add_argument("--db", default=default_db(), help="database URL (default: %(default)s)")
    migrate.add_argument("--json", action="store_true", help="print JSON")
    migrate.set_defaults(handler=_migrate)


def _migrate(args: argparse.Namespace) -> int:
    versions = (args.from_version, args.to_version)
    if args.flow is None:
        if versions != (None, None) or args.dry_run or args.by:
            return _usage("--from, --to, --dry-run and --by need FLOW")
        return _schema(args)
    if None in versions:
        return _usage("FLOW needs --from N and --to M")
    return _flow(args)


def _usage(problem: str) -> int:
    sys.stderr.write(f"ewallet-fsm migrate: error: {problem}\n")
    return 2


def _flow(args: argparse.Namespace) -> int:
    by = args.by or _user()
    with open_existing(args.db) as store:
        engine = Engine(store, flows=catalog(), event_types=EVENT_TYPES)
        moved = engine.migrate(
            args.flow, args.from_version, args.to_version, by=by, dry_run=args.dry_run
        )
    if args.json:
        write_json(
            {
                "flow": args.flow,
                "from": args.from_version,
                "to": args.to_version,
                "dry_run": args.dry_run,
                "instances": [_moved_json(m) for m in moved],
            }
        )
        return 0
    done = "would move" if args.dry_run else "moved"
    write(f"{args.flow}: {done} {len(moved)} from v{args.from_version} to v{args.to_version}")
    if moved:
        write(table(("instance", "from", "to", "step"), [_row(m) for m in moved]))
    return 0


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment or the password database
        return "operator"


def _moved_json(moved: MigratedInstance) -> dict[str, Any]:
    return {
        "id": moved.instance_id,
        "from": moved.source,
        "to": moved.dest,
        "step": None if moved.record is None else moved.record.seq,
    }


def _row(moved: MigratedInstance) -> tuple[str, str, str, str]:
    step = "-" if moved.record is None else str(moved.record.seq)
    return moved.instance_id, moved.source, moved.dest, step


def _schema(args: argparse.Namespace) -> int:
    store = SqlStore(args.db)
    try:
        before = store.schema_version()
        store.create_schema()
        after = store.schema_version()
    finally:
        store.dispose()
    shown = make_url(args.db).render_as_string(hide_password=True)
    if args.json:
        write_json({"database": shown, "before": before, "after": after})
    elif before == after:
        write(f"{shown}: schema already at revision {after}")
    else:
        write(f"{shown}: schema at revision {after} (was {before or 'empty'})")
    return 0
