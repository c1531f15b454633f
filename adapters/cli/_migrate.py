"""``ewallet-fsm migrate``: create a database's schema, or upgrade it to this release's."""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy import make_url

from adapters.cli._output import default_db, write, write_json
from fsm.store.sql import SqlStore


def register(subparsers: Any) -> None:
    """Add the migrate command."""
    migrate = subparsers.add_parser(
        "migrate", help="create the schema, or upgrade it to this release's (safe to repeat)"
    )
    migrate.add_argument("--db", default=default_db(), help="database URL (default: %(default)s)")
    migrate.add_argument("--json", action="store_true", help="print JSON")
    migrate.set_defaults(handler=_migrate)


def _migrate(args: argparse.Namespace) -> int:
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
