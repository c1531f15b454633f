"""Plain-text tables and JSON for the command line."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from fsm.persistence import DEFAULT_DB_URL, SqlStore

DB_ENV = "EWALLET_FSM_DB"


@contextmanager
def open_store(url: str) -> Iterator[SqlStore]:
    """The store at ``url`` with its schema in place; its connections close when the block ends."""
    store = SqlStore(url)
    try:
        store.create_schema()
        yield store
    finally:
        store.dispose()


def default_db() -> str:
    """``$EWALLET_FSM_DB`` when set, else the embedded SQLite file."""
    return os.environ.get(DB_ENV, DEFAULT_DB_URL)


def write(text: str = "") -> None:
    """One line on standard output."""
    sys.stdout.write(text + "\n")


def write_json(data: Any) -> None:
    """``data`` as indented JSON on standard output."""
    write(json.dumps(data, indent=2, ensure_ascii=False, default=_json_default))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A left-aligned text table."""
    cells = [[str(c) for c in headers], *[["" if c is None else str(c) for c in r] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def iso(moment: datetime | None) -> str | None:
    """An aware datetime as ISO 8601 text."""
    return None if moment is None else moment.isoformat()


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
