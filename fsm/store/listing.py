"""Listing stored instances for people: filtered, newest first, a page at a time.

Pages are cut by keyset on ``(created_at, id)``, never by ``OFFSET``: a page costs the same
however deep it is, and instances started while someone pages through are neither skipped nor
shown twice. The cursor is opaque text that carries the last instance shown.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, tuple_

from fsm.clock import require_aware
from fsm.errors import InvalidInstanceData
from fsm.model import Instance
from fsm.store.tables import INSTANCE_COLUMNS, INSTANCE_TABLE

_T = INSTANCE_TABLE
MAX_PAGE = 1000
"""The most instances one page may hold."""


@dataclass(frozen=True)
class InstanceFilter:
    """Which instances to list; every field given must match (``None``: any)."""

    state: str | None = None
    flow: str | None = None
    wallet: str | None = None
    reference_no: str | None = None
    since: datetime | None = None
    """Only instances created at or after this aware time."""
    due_at: datetime | None = None
    """Only instances whose deadline has passed at this aware time."""
    flow_version: int | None = None
    """Only instances pinned to this version of their flow."""
    updated_before: datetime | None = None
    """Only instances whose last step is older than this aware time."""


@dataclass(frozen=True)
class InstancePage:
    """One page of a listing, newest first."""

    instances: list[Instance]
    next_cursor: str | None
    """Where the next page starts; ``None`` when this page is the last."""

    @property
    def more(self) -> bool:
        """Whether more instances match after this page."""
        return self.next_cursor is not None


def page_query(where: InstanceFilter, *, limit: int, cursor: str | None) -> Select[Any]:
    """The query for one page: one row more than ``limit``, to tell whether more follow.

    Raises:
        InvalidInstanceData: ``limit`` is out of range, a time is naive, or ``cursor`` is not
            one a listing gave.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInstanceData(f"a page holds 1 to {MAX_PAGE} instances, not {limit}")
    query = select(*INSTANCE_COLUMNS)
    for column, value in (
        (_T.c.state, where.state),
        (_T.c.flow, where.flow),
        (_T.c.wallet, where.wallet),
        (_T.c.reference_no, where.reference_no),
    ):
        if value is not None:
            query = query.where(column == value)
    if where.since is not None:
        query = query.where(_T.c.created_at >= require_aware(where.since))
    if where.due_at is not None:
        query = query.where(_T.c.deadline_at <= require_aware(where.due_at))
    if where.flow_version is not None:
        query = query.where(_T.c.flow_version == where.flow_version)
    if where.updated_before is not None:
        query = query.where(_T.c.updated_at < require_aware(where.updated_before))
    if cursor is not None:
        created, last_id = decode_cursor(cursor)
        # a row-value comparison, so both databases seek the index to the cursor
        query = query.where(tuple_(_T.c.created_at, _T.c.id) < tuple_(created, last_id))
    return query.order_by(_T.c.created_at.desc(), _T.c.id.desc()).limit(limit + 1)


def make_page(rows: list[Instance], limit: int) -> InstancePage:
    """The page from :func:`page_query`'s rows: at most ``limit``, and a cursor if more follow."""
    shown = rows[:limit]
    more = len(rows) > limit
    return InstancePage(shown, encode_cursor(shown[-1]) if more else None)


def encode_cursor(last: Instance) -> str:
    """The opaque cursor for the page after ``last``."""
    text = json.dumps([last.created_at.isoformat(), last.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The ``(created_at, id)`` a cursor carries.

    Raises:
        InvalidInstanceData: the text is not a cursor a listing gave.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, last_id = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        moment = require_aware(datetime.fromisoformat(created))
    except (ValueError, TypeError, UnicodeError, binascii.Error):
        raise InvalidInstanceData(f"{cursor[:40]!r} is not a cursor a listing gave") from None
    if not isinstance(last_id, str):
        raise InvalidInstanceData(f"{cursor[:40]!r} is not a cursor a listing gave")
    return moment, last_id


__all__ = [
    "MAX_PAGE",
    "InstanceFilter",
    "InstancePage",
    "decode_cursor",
    "encode_cursor",
    "make_page",
    "page_query",
]
