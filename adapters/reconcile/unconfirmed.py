"""Outcomes the merchant has not confirmed to the customer: reported, never faked.

From version 2 of the built-in flows, ``paid``, ``failed`` and ``expired`` (and a link's
``linked``) wait for the merchant's own step (``confirm_order``, ``confirm_link``), and no timer
takes it on the merchant's behalf. :func:`unconfirmed` lists those still waiting a while after
their last step, for ``ewallet-fsm unconfirmed`` and for a person; :class:`UnconfirmedWatch`
logs them as a warning from a reconcile loop, now and then rather than on every pass.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from fsm.definition import FlowCatalog
from fsm.model import Instance
from fsm.store.listing import MAX_PAGE, InstanceFilter
from fsm.store.sql import SqlStore

logger = logging.getLogger(__name__)

DEFAULT_WINDOW = timedelta(minutes=30)
"""How long after its outcome a payment may wait for the merchant's confirmation unreported."""
DEFAULT_EVERY = timedelta(minutes=10)
"""How often a reconcile loop looks for, and warns of, unconfirmed outcomes."""


@dataclass(frozen=True)
class Awaiting:
    """A state in which instances of one flow version wait for the merchant's confirmation."""

    flow: str
    version: int
    state: str


def awaiting(catalog: FlowCatalog) -> list[Awaiting]:
    """Every state, of every released flow version, that a follow-up leaves."""
    return [
        Awaiting(flow.name, flow.version, state)
        for flow in catalog.released()
        for state in sorted(
            {s for spec in flow.transitions if spec.follow_up for s in spec.sources}
        )
    ]


def unconfirmed(
    store: SqlStore,
    catalog: FlowCatalog,
    *,
    now: datetime,
    older_than: timedelta = DEFAULT_WINDOW,
    limit: int = 100,
) -> list[Instance]:
    """Instances whose outcome waits for the merchant's confirmation ``older_than`` after their
    last step, oldest step first, at most ``limit``.

    Raises:
        InvalidInstanceData: ``limit`` is not 1 to 1000, or ``now`` is naive.
    """
    found: list[Instance] = []
    for where in awaiting(catalog):
        query = InstanceFilter(
            flow=where.flow,
            flow_version=where.version,
            state=where.state,
            updated_before=now - older_than,
        )
        found += store.page_instances(query, limit=min(limit, MAX_PAGE)).instances
    return sorted(found, key=lambda instance: (instance.updated_at, instance.id))[:limit]


@dataclass
class UnconfirmedWatch:
    """Warns, at most once per ``every``, of the outcomes :func:`unconfirmed` finds."""

    store: SqlStore
    catalog: FlowCatalog
    older_than: timedelta = DEFAULT_WINDOW
    every: timedelta = DEFAULT_EVERY
    _next: datetime | None = field(default=None, init=False)

    def check(self, now: datetime) -> list[Instance] | None:
        """The unconfirmed outcomes, logged as a warning; ``None`` when it is not time yet."""
        if self._next is not None and now < self._next:
            return None
        self._next = now + self.every
        found = unconfirmed(self.store, self.catalog, now=now, older_than=self.older_than)
        if found:
            oldest = found[0]
            logger.warning(
                "outcomes not confirmed to the customer",
                extra={
                    "count": len(found),
                    "instance": oldest.id,
                    "flow": oldest.flow,
                    "state": oldest.state,
                    "reference": oldest.reference_no,
                    "since": oldest.updated_at.isoformat(),
                },
            )
        return found


__all__ = [
    "DEFAULT_EVERY",
    "DEFAULT_WINDOW",
    "Awaiting",
    "UnconfirmedWatch",
    "awaiting",
    "unconfirmed",
]
