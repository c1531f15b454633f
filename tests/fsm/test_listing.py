"""Listing instances: filters, newest first, keyset pages with an opaque cursor, on both DBs."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from fsm import Engine, InvalidInstanceData, ManualClock, SqlStore
from fsm.store.listing import InstanceFilter, page_query
from tests.fsm.conftest import T0

STEP = timedelta(minutes=1)


def every_page(store: SqlStore, where: InstanceFilter | None = None, limit: int = 2) -> list[str]:
    """Ids of every page, following the cursors; checks each page says whether more follow."""
    ids: list[str] = []
    cursor = None
    while True:
        page = store.page_instances(where, limit=limit, cursor=cursor)
        assert len(page.instances) <= limit
        ids += [instance.id for instance in page.instances]
        if not page.more:
            assert page.next_cursor is None
            return ids
        assert len(page.instances) == limit
        cursor = page.next_cursor


@pytest.fixture
def stored(engine: Engine, clock: ManualClock) -> dict[str, Any]:
    """Seven instances: three started at one instant, the rest a minute apart."""
    start = engine.start
    start("ewallet_payment", instance_id="a-ovo", wallet="ovo", reference_no="ORD-A")
    clock.advance(STEP)
    same_time = clock.now()
    for name in ("b-dana", "c-dana", "d-link"):  # created at the same instant: ids break ties
        if name == "d-link":
            start("astrapay_link", instance_id=name, wallet="astrapay", reference_no="LNK-D")
        else:
            start("ewallet_payment", instance_id=name, wallet="dana", reference_no=name.upper())
    clock.advance(STEP)
    start("ewallet_payment", instance_id="e-ovo", wallet="ovo", reference_no="ORD-E")
    engine.fire("e-ovo", "send_registration", actor="merchant", idempotency_key="reg")
    clock.advance(STEP)
    start("ewallet_payment", instance_id="f-shopee", wallet="shopeepay", reference_no="ORD-F")
    clock.advance(STEP)
    start("astrapay_payment", instance_id="g-astra", wallet="astrapay", reference_no="ORD-G")
    return {"same_time": same_time}


NEWEST_FIRST = ["g-astra", "f-shopee", "e-ovo", "d-link", "c-dana", "b-dana", "a-ovo"]


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 50])
def test_pages_cover_everything_once_newest_first(
    store: SqlStore, stored: dict[str, Any], limit: int
) -> None:
    assert every_page(store, limit=limit) == NEWEST_FIRST


def test_a_page_says_when_more_follow(store: SqlStore, stored: dict[str, Any]) -> None:
    first = store.page_instances(limit=4)
    assert [i.id for i in first.instances] == NEWEST_FIRST[:4]
    assert first.more
    assert first.next_cursor is not None
    rest = store.page_instances(limit=4, cursor=first.next_cursor)
    assert [i.id for i in rest.instances] == NEWEST_FIRST[4:]
    assert not rest.more
    assert store.page_instances(limit=7).next_cursor is None


def test_instances_started_while_paging_move_no_page(
    store: SqlStore, engine: Engine, clock: ManualClock, stored: dict[str, Any]
) -> None:
    first = store.page_instances(limit=3)
    clock.advance(STEP)
    engine.start("ewallet_payment", instance_id="h-new", wallet="ovo")
    rest = store.page_instances(limit=10, cursor=first.next_cursor)
    assert [i.id for i in first.instances] + [i.id for i in rest.instances] == NEWEST_FIRST
    assert every_page(store, limit=3) == ["h-new", *NEWEST_FIRST]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (InstanceFilter(flow="astrapay_link"), ["d-link"]),
        (InstanceFilter(wallet="dana"), ["c-dana", "b-dana"]),
        (InstanceFilter(state="registration_sent"), ["e-ovo"]),
        (InstanceFilter(state="checkout_requested", wallet="ovo"), ["a-ovo"]),
        (InstanceFilter(reference_no="ORD-F"), ["f-shopee"]),
        (InstanceFilter(flow="ewallet_payment", wallet="astrapay"), []),
    ],
)
def test_filters(
    store: SqlStore, stored: dict[str, Any], where: InstanceFilter, expected: list[str]
) -> None:
    assert every_page(store, where, limit=1) == expected


def test_last_step_before_and_flow_version(store: SqlStore, stored: dict[str, Any]) -> None:
    # e-ovo's last step was at T0+2m; the four before it took none since they started
    before = InstanceFilter(updated_before=T0 + 2 * STEP)
    assert every_page(store, before) == ["d-link", "c-dana", "b-dana", "a-ovo"]
    assert every_page(store, InstanceFilter(flow_version=2)) == NEWEST_FIRST  # the newest
    assert every_page(store, InstanceFilter(flow_version=1)) == []


def test_since_and_due(store: SqlStore, clock: ManualClock, stored: dict[str, Any]) -> None:
    since = InstanceFilter(since=stored["same_time"])
    assert every_page(store, since) == NEWEST_FIRST[:-1]
    # e-ovo waited a minute for its registration's answer from T0+2m; checkouts wait 15 minutes
    assert every_page(store, InstanceFilter(due_at=clock.now())) == ["e-ovo"]
    assert every_page(store, InstanceFilter(due_at=T0 + 3 * STEP)) == ["e-ovo"]
    assert every_page(store, InstanceFilter(due_at=T0 + 3 * STEP - timedelta(seconds=1))) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": 0}, "a page holds 1 to 1000 instances, not 0"),
        ({"limit": 1001}, "a page holds 1 to 1000 instances, not 1001"),
        ({"cursor": "not-a-cursor"}, "'not-a-cursor' is not a cursor a listing gave"),
        ({"cursor": "WzEsMl0"}, "is not a cursor a listing gave"),  # JSON, not a cursor
    ],
)
def test_bad_pages_are_refused(store: SqlStore, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInstanceData, match=message):
        store.page_instances(**kwargs)


def test_a_naive_since_is_refused(store: SqlStore) -> None:
    with pytest.raises(InvalidInstanceData, match="naive"):
        store.page_instances(InstanceFilter(since=T0.replace(tzinfo=None)))


@pytest.mark.parametrize(
    ("where", "index"),
    [
        (InstanceFilter(), "ix_flow_instance_created"),
        (InstanceFilter(state="needs_review"), "ix_flow_instance_state"),
    ],
)
def test_a_page_is_read_through_an_index(
    store: SqlStore, stored: dict[str, Any], where: InstanceFilter, index: str
) -> None:
    """No sort of the whole table and no OFFSET: the plan walks the listing's index."""
    query = page_query(where, limit=2, cursor=store.page_instances(limit=2).next_cursor)
    explain = "EXPLAIN " if store.dialect == "postgresql" else "EXPLAIN QUERY PLAN "
    compiled = query.compile(store.engine, compile_kwargs={"literal_binds": True})
    assert re.search(r"OFFSET (?!0\b)", str(compiled)) is None  # SQLite's dialect says OFFSET 0
    with store.engine.begin() as conn:
        if store.dialect == "postgresql":
            conn.execute(text("set local enable_seqscan = off"))  # seven rows: force the choice
        plan = conn.exec_driver_sql(explain + str(compiled)).all()
    shown = " ".join(str(cell) for row in plan for cell in row)
    assert index in shown
    # the cursor seeks the index (no rows before it are read and dropped), and nothing is sorted
    if store.dialect == "postgresql":
        assert "ROW(created_at, (id)::text) < ROW(" in shown.split("Index Cond:")[1]
        assert "Filter" not in shown
        assert "Sort" not in shown
    else:
        assert "(created_at,id)<(?,?)" in shown
        assert "TEMP B-TREE" not in shown.upper()
