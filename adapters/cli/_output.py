"""Plain-text tables and JSON for the command line."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import make_url

from fsm.chain.keys import AuditKeys
from fsm.errors import ConfigurationError, InvalidInstanceData
from fsm.store.schema import HEAD_REVISION, alembic_config
from fsm.store.sql import DEFAULT_DB_URL, SqlStore

DB_ENV = "EWALLET_FSM_DB"


@contextmanager
def open_store(url: str) -> Iterator[SqlStore]:
    """The store at ``url`` with its schema in place; its connections close when the block ends.

    Rows are chained under the audit keys in ``$EWALLET_FSM_AUDIT_KEY``, when set.
    """
    store = SqlStore(url, audit_keys=AuditKeys.from_env())
    try:
        store.create_schema()
        yield store
    finally:
        store.dispose()


@contextmanager
def open_existing(url: str) -> Iterator[SqlStore]:
    """The store at ``url`` as it is, never created or migrated; closed when the block ends.

    Raises:
        ConfigurationError: there is no SQLite file at the path, or the database's schema is
            missing or not at the head revision; the message says what to run.
    """
    _refuse_missing_file(url)
    store = SqlStore(url, audit_keys=AuditKeys.from_env())
    try:
        _refuse_other_revision(store, url)
        yield store
    finally:
        store.dispose()


def _refuse_missing_file(url: str) -> None:
    parsed = make_url(url)
    path = parsed.database
    if parsed.get_backend_name() != "sqlite" or not path or path == ":memory:":
        return
    if path.startswith("file:") or Path(path).is_file():
        return
    raise ConfigurationError(
        f"no database file at {path}: give --db URL (or ${DB_ENV}), "
        f"or create one with `ewallet-fsm migrate --db {url}`"
    )


def _refuse_other_revision(store: SqlStore, url: str) -> None:
    revision = store.schema_version()
    if revision == HEAD_REVISION:
        return
    shown = make_url(url).render_as_string(hide_password=True)
    migrate = f"`ewallet-fsm migrate --db {shown}`"
    if revision is None:
        raise ConfigurationError(f"{shown} holds no ewallet-fsm schema: create it with {migrate}")
    if not _known_revision(revision):
        raise ConfigurationError(
            f"{shown} is at schema revision {revision}, newer than this ewallet-fsm "
            f"({HEAD_REVISION}): use the release that wrote it"
        )
    raise ConfigurationError(
        f"{shown} is at schema revision {revision}, not {HEAD_REVISION}: upgrade it with {migrate}"
    )


def _known_revision(revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


def aware_time(text: str | None, flag: str) -> datetime | None:
    """``text`` as an aware time, for the option ``flag``; ``None`` when not given.

    Raises:
        InvalidInstanceData: the text is not an ISO 8601 time, or has no timezone.
    """
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInstanceData(f"{flag} {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise InvalidInstanceData(f"{flag} {text!r} has no timezone (add Z or +07:00)")
    return moment


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
