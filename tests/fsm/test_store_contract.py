"""The store contract: what the engine relies on, held by every store alike.

Each test runs on :class:`~fsm.store.memory.MemoryStore`, then on
:class:`~fsm.store.sql.SqlStore` over SQLite and over PostgreSQL: refused naive times, times read
back in UTC, one instance per id, the append-only log, units that commit whole or roll back
whole, the compare-and-set on the version, one log entry per key, one live instance per
reference, lookups and the bulk read that verification folds.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from itertools import pairwise

import pytest

from fsm import (
    Actor,
    ChainStatus,
    ConcurrentTransition,
    Engine,
    Instance,
    InstanceExists,
    InvalidInstanceData,
    ManualClock,
    ReferenceInUse,
    RejectedEvent,
    RejectReason,
    TransitionNotAllowed,
    replay,
    verify_chains,
    verify_stored,
)
from fsm._signals import KeyTaken, ReferenceTaken
from fsm.definition import BINDABLE_FIELDS
from fsm.flows import FLOWS
from tests.conftest import AnyStore
from tests.fsm.conftest import T0
from tests.fsm.test_persistence import FLOW, MINUTE, PATH, WIB, make_instance, record_for


@pytest.fixture
def store(any_store: AnyStore) -> AnyStore:
    """Every test here runs in memory, on SQLite and on PostgreSQL."""
    return any_store


# --- instances -------------------------------------------------------------------------------


def test_naive_datetime_is_refused_on_insert(store: AnyStore) -> None:
    with pytest.raises(InvalidInstanceData, match="naive"):
        store.insert_instance(make_instance(created_at=datetime(2026, 11, 23, 10, 0)))
    assert store.list_instances() == []


def test_naive_deadline_is_refused_on_insert(store: AnyStore) -> None:
    with pytest.raises(InvalidInstanceData, match="naive"):
        store.insert_instance(make_instance(deadline_at=datetime(2026, 11, 23, 10, 0)))
    assert store.list_instances() == []


def test_aware_times_read_back_as_the_same_instant_in_utc(store: AnyStore) -> None:
    created = datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=WIB)  # 03:00:00.123456 UTC
    store.insert_instance(make_instance(created_at=created, deadline_at=created + MINUTE))
    stored = store.get("pay-1")
    assert stored.created_at == created
    assert stored.deadline_at == created + MINUTE
    for moment in (stored.created_at, stored.updated_at, stored.deadline_at):
        assert moment is not None
        assert moment.utcoffset() == timedelta(0)
    assert (stored.created_at.hour, stored.created_at.microsecond) == (3, 123456)


def test_duplicate_instance_id_is_refused(store: AnyStore) -> None:
    store.insert_instance(make_instance())
    with pytest.raises(InstanceExists):
        store.insert_instance(replace(make_instance(), amount="999"))
    assert store.get("pay-1").amount == "1000"


# --- the log ---------------------------------------------------------------------------------


def test_log_is_append_only_and_ordered(engine: Engine, clock: ManualClock) -> None:
    pid = engine.start("ewallet_payment", wallet="ovo", amount=1000).id
    snapshots = []
    for index, (event_name, actor, payload) in enumerate(PATH):
        clock.advance(MINUTE)
        engine.fire(pid, event_name, actor=actor, idempotency_key=f"k{index}", payload=payload)
        with pytest.raises(TransitionNotAllowed):  # a refusal never touches the log
            engine.fire(pid, "confirm_order", actor="merchant", idempotency_key=f"no{index}")
        history = engine.history(pid)
        assert engine.get(pid).version == len(history) == index + 1
        snapshots.append(history)

    final = snapshots[-1]
    for earlier in snapshots:
        assert final[: len(earlier)] == earlier  # nothing rewritten, only appended
    assert [record.seq for record in final] == list(range(1, len(PATH) + 1))
    assert [record.event for record in final] == [step[0] for step in PATH]
    for previous, record in pairwise(final):
        assert record.source == previous.dest
        assert record.occurred_at > previous.occurred_at
    assert len(engine.rejections(pid)) == len(PATH)


def test_a_stored_payload_shares_nothing_with_its_callers(engine: Engine) -> None:
    pid = engine.start("ewallet_payment", wallet="ovo", amount=1000).id
    sent = {"note": {"nested": "as sent"}}
    engine.fire(pid, "send_registration", actor="merchant", idempotency_key="k1", payload=sent)
    sent["note"]["nested"] = "changed by the caller after the fire"
    read = engine.history(pid)[0].payload
    read["note"]["nested"] = "changed by a reader"

    assert engine.history(pid)[0].payload == {"note": {"nested": "as sent"}}


def test_unit_commits_all_or_nothing(store: AnyStore) -> None:
    store.insert_instance(make_instance())
    loaded = store.get("pay-1")
    rejected = RejectedEvent(
        instance_id="pay-1",
        event="confirm_payment",
        state=loaded.state,
        version=0,
        actor=Actor.STATUS_INQUIRY,
        idempotency_key="x",
        reason=RejectReason.NOT_ALLOWED,
        detail="",
        payload={},
        occurred_at=T0,
    )
    record = record_for(loaded, "send_registration", "registration_sent", Actor.MERCHANT, "r", T0)

    def write_then_fail() -> None:
        with store.unit() as unit:
            unit.reject(rejected)
            unit.apply(record, expected_version=0, deadline_at=None, bound={})
            raise RuntimeError("the caller failed after writing")

    with pytest.raises(RuntimeError, match="after writing"):
        write_then_fail()
    assert store.get("pay-1") == loaded
    assert store.history("pay-1") == []
    assert store.rejections("pay-1") == []


def test_find_by_tx_id_and_reference_no(store: AnyStore) -> None:
    store.insert_instance(make_instance("pay-b", tx_id="TX-B", reference_no="ORD-1"))
    store.insert_instance(make_instance("pay-a", tx_id="TX-A", reference_no="ORD-1"))
    store.insert_instance(make_instance("pay-c", tx_id="TX-C", reference_no="ORD-2"))

    def ids(found: list[Instance]) -> list[str]:
        return [instance.id for instance in found]

    assert ids(store.find(tx_id="TX-A")) == ["pay-a"]
    assert ids(store.find(reference_no="ORD-1")) == ["pay-a", "pay-b"]  # ordered by id
    assert ids(store.find(tx_id="TX-C", reference_no="ORD-2")) == ["pay-c"]
    assert ids(store.find(tx_id="TX-A", reference_no="ORD-2")) == []  # both must match
    assert ids(store.find(tx_id="TX-Z")) == []


def test_stale_compare_and_set_writes_nothing(
    store: AnyStore, other_store: AnyStore, clock: ManualClock
) -> None:
    Engine(store, flows=FLOWS, clock=clock).start(
        "ewallet_payment", instance_id="pay-1", wallet="ovo"
    )
    loaded = store.get("pay-1")  # version 0
    rival = Engine(other_store, flows=FLOWS, clock=clock)
    rival.fire("pay-1", "send_registration", actor="merchant", idempotency_key="reg")
    moved = store.get("pay-1")

    stale = record_for(loaded, "abandon_checkout", "checkout_abandoned", Actor.TIMER, "ab", T0)
    with pytest.raises(ConcurrentTransition), store.unit() as unit:
        unit.apply(stale, expected_version=loaded.version, deadline_at=None, bound={})
    assert store.get("pay-1") == moved
    assert [record.event for record in store.history("pay-1")] == ["send_registration"]

    # the version was the only obstacle: the same write against the current version applies
    fresh = record_for(moved, "fail_registration", "registration_failed", Actor.TIMER, "ab", T0)
    with store.unit() as unit:
        unit.apply(fresh, expected_version=moved.version, deadline_at=None, bound={})
    assert store.get("pay-1").state == "registration_failed"


def test_a_second_live_instance_with_one_reference_is_refused_on_insert(store: AnyStore) -> None:
    store.insert_instance(make_instance("pay-a", reference_no="ORD-1", deadline_at=T0))
    store.insert_instance(make_instance("pay-b", reference_no="ORD-1"))  # final: no deadline
    with pytest.raises(ReferenceInUse) as refused:
        store.insert_instance(make_instance("pay-c", reference_no="ORD-1", deadline_at=T0))
    assert refused.value.live_id == "pay-a"
    assert [instance.id for instance in store.find(reference_no="ORD-1")] == ["pay-a", "pay-b"]


# --- units -----------------------------------------------------------------------------------


def test_a_key_logged_by_a_racing_writer_rolls_the_whole_step_back(
    store: AnyStore, clock: ManualClock
) -> None:
    """The log insert failing on the unique key must not leave the state update behind."""
    engine = Engine(store, flows=FLOWS, clock=clock)
    engine.start("ewallet_payment", instance_id="pay-1", wallet="ovo")
    engine.fire("pay-1", "send_registration", actor="merchant", idempotency_key="reg")
    moved = store.get("pay-1")
    # same key as step 1, written as if by a writer that did not see it: the CAS passes
    clash = record_for(moved, "fail_registration", "registration_failed", Actor.TIMER, "reg", T0)
    with pytest.raises(KeyTaken), store.unit() as unit:  # a ConcurrentTransition to the engine
        unit.apply(clash, expected_version=moved.version, deadline_at=None, bound={})
    assert store.get("pay-1") == moved
    assert [record.seq for record in store.history("pay-1")] == [1]
    with store.unit() as unit:  # the first step answers for the key
        assert unit.find_key("pay-1", "reg") == store.history("pay-1")[0]
        assert unit.find_key("pay-1", "other") is None


def test_binding_another_live_instances_reference_is_refused(store: AnyStore) -> None:
    store.insert_instance(make_instance("pay-a", reference_no="ORD-1", deadline_at=T0))
    store.insert_instance(make_instance("pay-b", reference_no="ORD-2", deadline_at=T0))
    loaded = store.get("pay-b")
    step = record_for(loaded, "send_registration", "registration_sent", Actor.MERCHANT, "k", T0)
    with pytest.raises(ReferenceTaken), store.unit() as unit:
        unit.apply(step, expected_version=0, deadline_at=T0, bound={"reference_no": "ORD-1"})
    assert store.get("pay-b") == loaded
    # once the step ends the instance (no deadline), the reference may be bound
    with store.unit() as unit:
        unit.apply(step, expected_version=0, deadline_at=None, bound={"reference_no": "ORD-1"})
    assert store.get("pay-b").reference_no == "ORD-1"


@pytest.mark.parametrize("name", sorted(BINDABLE_FIELDS))
def test_a_step_sets_each_field_it_binds_as_the_engine_expects(store: AnyStore, name: str) -> None:
    store.insert_instance(make_instance())
    loaded = store.get("pay-1")
    step = record_for(loaded, "send_registration", "registration_sent", Actor.MERCHANT, "r", T0)
    with store.unit() as unit:
        unit.apply(step, expected_version=0, deadline_at=T0 + MINUTE, bound={name: "7"})
    stored = store.get("pay-1")
    assert getattr(stored, name) == "7"
    assert stored == loaded.advanced(step, T0 + MINUTE, {name: "7"})  # what fire returns


def test_a_unit_refuses_a_naive_time_or_a_field_no_step_binds(store: AnyStore) -> None:
    store.insert_instance(make_instance())
    loaded = store.get("pay-1")
    naive = record_for(loaded, "send_registration", "registration_sent", Actor.MERCHANT, "r",
                       datetime(2026, 11, 23, 10, 0))  # fmt: skip
    aware = replace(naive, occurred_at=T0)
    for record, bound in ((naive, {}), (aware, {"amount": "1"})):
        with pytest.raises(InvalidInstanceData), store.unit() as unit:
            unit.apply(record, expected_version=0, deadline_at=None, bound=bound)
    assert store.get("pay-1") == loaded
    assert store.history("pay-1") == []


def test_a_refusal_is_found_by_its_key(store: AnyStore) -> None:
    store.insert_instance(make_instance())
    refused = RejectedEvent(
        instance_id="pay-1", event="confirm_payment", state="checkout_requested", version=0,
        actor=Actor.STATUS_INQUIRY, idempotency_key="slot-1", reason=RejectReason.UNVERIFIED,
        detail="forged", payload={"n": 1}, occurred_at=T0.astimezone(WIB),
    )  # fmt: skip
    with store.unit() as unit:
        unit.reject(refused)
    assert store.has_rejection("pay-1", "slot-1")
    assert not store.has_rejection("pay-1", "slot-2")
    assert not store.has_rejection("pay-2", "slot-1")
    (stored,) = store.rejections("pay-1")
    assert stored == refused
    assert stored.occurred_at.utcoffset() == timedelta(0)


# --- bulk reads ------------------------------------------------------------------------------


def test_verify_stored_folds_what_each_history_replays_to(store: AnyStore) -> None:
    engine = Engine(store, flows=FLOWS, clock=ManualClock(T0))
    paid = engine.start("ewallet_payment", wallet="ovo", amount=1000).id
    fresh = engine.start("ewallet_payment", wallet="dana", amount=1000).id
    for index, (event_name, actor, payload) in enumerate(PATH):
        engine.fire(paid, event_name, actor=actor, idempotency_key=f"k{index}", payload=payload)
    ids = [fresh, paid, "no-such-payment"]
    results = verify_stored(store, FLOW, ids)
    assert list(results) == ids
    for pid in ids:
        assert replace(results[pid], chain=None) == replay(FLOW, store.history(pid))
    assert [results[pid].chain for pid in ids] == [*verify_chains(store, ids[:2]).values(), None]
    assert all(results[pid].chain.status is ChainStatus.INTACT for pid in ids[:2])  # type: ignore[union-attr]
    cut = verify_stored(store, FLOW, [paid], until_time=T0 - MINUTE)[paid]
    assert (cut.state, cut.applied) == (FLOW.initial, 0)


def test_fire_returns_the_instance_as_stored(store: AnyStore) -> None:
    engine = Engine(store, flows=FLOWS, clock=ManualClock(T0))
    pid = engine.start("ewallet_payment", wallet="ovo", amount=1000, reference_no="ORD-9").id
    for index, (event_name, actor, payload) in enumerate(PATH):
        result = engine.fire(
            pid, event_name, actor=actor, idempotency_key=f"k{index}", payload=payload
        )
        assert result.instance == store.get(pid)
    again = engine.fire(pid, PATH[0][0], actor=PATH[0][1], idempotency_key="k0")
    assert again.duplicate
    assert again.instance == store.get(pid)
