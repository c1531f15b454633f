"""The reads the audit chain is checked from: every chained column, as the writer chained it.

Log rows come as :data:`~fsm.chain.content.LINK_FIELDS` then ``chain_link, chain_key``, ordered by
instance and sequence; instance rows as :data:`~fsm.chain.content.SEAL_FIELDS` then
``chain_link, chain_seal, chain_key``. The payload is the stored text, never parsed. A stored time
that does not read as one is passed on as its text, which no link matches: the verdict names the
step instead of the read failing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.sql.elements import ClauseElement, ColumnElement

from fsm.chain.content import LINK_FIELDS, SEAL_FIELDS
from fsm.store.tables import INSTANCE_TABLE, LOG_TABLE

_LOG_COLUMNS = (
    *(LOG_TABLE.c[name] for name in LINK_FIELDS),
    LOG_TABLE.c.chain_link,
    LOG_TABLE.c.chain_key,
)
_INSTANCE_COLUMNS = (
    *(INSTANCE_TABLE.c[name] for name in SEAL_FIELDS),
    INSTANCE_TABLE.c.chain_link,
    INSTANCE_TABLE.c.chain_seal,
    INSTANCE_TABLE.c.chain_key,
)
_TIME = LINK_FIELDS.index("occurred_at")
LOG_ID = LOG_TABLE.c.instance_id
INSTANCE_ID = INSTANCE_TABLE.c.id


def log_rows(ids: ColumnElement[bool]) -> ClauseElement:
    """The chained log rows of the ids, by instance and sequence."""
    return select(*_LOG_COLUMNS).where(ids).order_by(LOG_TABLE.c.instance_id, LOG_TABLE.c.seq)


def instance_rows(ids: ColumnElement[bool]) -> ClauseElement:
    """The sealed instance rows of the ids."""
    return select(*_INSTANCE_COLUMNS).where(ids)


def with_times(
    rows: Iterable[Sequence[Any]], read: Callable[[Any], Any]
) -> Iterator[tuple[Any, ...]]:
    """``rows`` with their time read by ``read``, or left as stored when it is not a time."""
    for row in rows:
        value = row[_TIME]
        if not isinstance(value, datetime):
            with contextlib.suppress(TypeError, ValueError):
                value = read(value)
        yield (*row[:_TIME], value, *row[_TIME + 1 :])


__all__ = ["INSTANCE_ID", "LOG_ID", "instance_rows", "log_rows", "with_times"]
