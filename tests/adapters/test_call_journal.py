"""The call journal (:mod:`adapters.reconcile.journal`), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from adapters.errors import CallInDoubt, CallKeyTaken, InstanceBusy
from adapters.reconcile.intents import INTENT_GRACE
from adapters.reconcile.journal import CallJournal, Hold
from fsm import Engine, InstanceNotFound, ManualClock, SqlStore
from fsm.errors import InvalidInstanceData
from fsm.flows import FLOWS
from fsm.store.leases import Leases
from tests.fsm.conftest import T0
from tests.fsm.test_claims import LATER, LEASE, due_payments, run_together


@pytest.fixture
def engine(store: SqlStore) -> Engine:
    return Engine(store, flows=FLOWS, clock=ManualClock(T0))


@pytest.fixture
def calls(store: SqlStore, engine: Engine) -> CallJournal:
    return CallJournal(store, clock=engine.clock)


def test_an_intent_stays_open_until_finished(engine: Engine, calls: CallJournal) -> None:
    (pid,) = due_payments(engine, 1)
    intent_id = calls.record(
        pid,
        "registration",
        at=T0,
        reference_no="ORD-1",
        amount="1000",
        request={"referenceNo": "ORD-1", "amt": "1000", "merchantToken": "secret-token"},
    )
    (open_intent,) = calls.still_open(recorded_before=T0)
    assert (open_intent.id, open_intent.call, open_intent.amount) == (
        intent_id,
        "registration",
        "1000",
    )
    assert open_intent.request["merchantToken"] != "secret-token"
    assert calls.still_open(recorded_before=T0 - timedelta(seconds=1)) == []
    assert calls.finish(intent_id, outcome="answered", at=T0 + timedelta(seconds=1))
    assert not calls.finish(intent_id, outcome="again", at=T0 + timedelta(seconds=2))
    assert calls.still_open(recorded_before=LATER) == []
    (done,) = calls.of_instance(pid)
    assert (done.outcome, done.finished_at) == ("answered", T0 + timedelta(seconds=1))


def test_a_journal_judges_an_intents_age_on_its_own_clock(engine: Engine, store: SqlStore) -> None:
    (pid,) = due_payments(engine, 1)
    clock = ManualClock(T0)
    calls = CallJournal(store, clock=clock)
    calls.record(pid, "cancel", at=clock.now())
    (intent,) = calls.of_instance(pid)
    assert calls.age(intent) == timedelta(0)  # whatever the host's clock says
    clock.advance(INTENT_GRACE)
    assert calls.age(intent) == INTENT_GRACE


def test_a_journal_has_no_clock_of_its_own(store: SqlStore) -> None:
    with pytest.raises(TypeError):
        CallJournal(store)  # type: ignore[call-arg]


def test_an_intent_for_an_unknown_instance_is_refused(calls: CallJournal) -> None:
    with pytest.raises(InstanceNotFound):
        calls.record("nope", "inquiry", at=T0)
    assert calls.still_open(recorded_before=LATER) == []


def test_an_intent_with_a_naive_time_stores_nothing(engine: Engine, calls: CallJournal) -> None:
    (pid,) = due_payments(engine, 1)
    with pytest.raises(InvalidInstanceData):
        calls.record(pid, "inquiry", at=T0.replace(tzinfo=None))
    assert calls.of_instance(pid) == []


def test_an_exclusive_call_is_refused_while_one_of_its_kind_is_open(
    engine: Engine, calls: CallJournal
) -> None:
    (pid,) = due_payments(engine, 1)
    first = calls.record(pid, "cancel", at=T0, exclusive=True)
    with pytest.raises(CallInDoubt):
        calls.record(pid, "cancel", at=T0, exclusive=True)
    calls.record(pid, "inquiry", at=T0)  # other calls, and non-exclusive ones, go ahead
    calls.record(pid, "inquiry", at=T0)
    calls.finish(first, outcome="answered", at=T0)
    calls.record(pid, "cancel", at=T0, exclusive=True)  # the first one is answered now
    assert [i.call for i in calls.of_instance(pid)].count("cancel") == 2


def test_racing_exclusive_calls_let_exactly_one_through(
    engine: Engine, calls: CallJournal, db_url: str
) -> None:
    (pid,) = due_payments(engine, 1)
    stores = [SqlStore(db_url) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    outcomes: list[str] = []

    def cancel(own_store: SqlStore) -> None:
        barrier.wait(timeout=10)
        try:
            CallJournal(own_store, clock=engine.clock).record(pid, "cancel", at=T0, exclusive=True)
            outcomes.append("recorded")
        except CallInDoubt:
            outcomes.append("in doubt")

    run_together(stores, lambda _n, own_store: cancel(own_store))
    assert sorted(outcomes) == ["in doubt"] * 3 + ["recorded"]
    assert len(calls.of_instance(pid)) == 1


def test_a_call_key_is_recorded_once_per_instance_whether_or_not_it_is_open(
    engine: Engine, calls: CallJournal
) -> None:
    payment = engine.start("ewallet_payment", wallet="dana", amount=1000, reference_no="ORD-K")
    other = engine.start("ewallet_payment", wallet="dana", amount=1000, reference_no="ORD-L")
    first = calls.record(payment.id, "cancel", at=T0, call_key="refund:r1")
    with pytest.raises(CallKeyTaken) as taken:
        calls.record(payment.id, "cancel", at=T0, call_key="refund:r1")
    assert taken.value.intent_id == first
    calls.finish(first, outcome="answered", at=T0)
    with pytest.raises(CallKeyTaken):
        calls.record(payment.id, "inquiry", at=T0, call_key="refund:r1")
    # The key is the instance's own; unkeyed calls are unaffected.
    calls.record(other.id, "cancel", at=T0, call_key="refund:r1")
    calls.record(payment.id, "inquiry", at=T0)
    calls.record(payment.id, "inquiry", at=T0)
    found = calls.by_key(payment.id, "refund:r1")
    assert found is not None
    assert (found.id, found.call_key, found.outcome) == (first, "refund:r1", "answered")
    assert calls.by_key(payment.id, "refund:r2") is None


# --- a call that holds its instance ----------------------------------------------------------

HOLD = Hold("cancel:test", timedelta(minutes=10))


def test_a_held_call_keeps_reconcilers_off_its_instance_until_it_finishes(
    engine: Engine, calls: CallJournal, store: SqlStore
) -> None:
    (pid,) = due_payments(engine, 1)
    leases = Leases(store)
    intent_id = calls.record(pid, "cancel", at=T0, exclusive=True, hold=HOLD)
    assert not leases.claim(pid, owner="reconciler", now=T0 + timedelta(minutes=9), lease=LEASE)
    assert calls.finish(intent_id, outcome="answered", at=T0, held=(pid, HOLD))
    assert leases.claim(pid, owner="reconciler", now=T0, lease=LEASE)


def test_a_held_call_is_not_recorded_while_a_reconciler_holds_its_instance(
    engine: Engine, calls: CallJournal, store: SqlStore
) -> None:
    (pid,) = due_payments(engine, 1)
    assert Leases(store).claim(pid, owner="reconciler", now=T0, lease=LEASE)
    with pytest.raises(InstanceBusy) as busy:
        calls.record(pid, "cancel", at=T0, exclusive=True, call_key="refund:r1", hold=HOLD)
    assert (busy.value.instance_id, busy.value.retryable) == (pid, True)
    assert calls.of_instance(pid) == []  # the intent went with the refused claim
    calls.record(pid, "cancel", at=T0 + LEASE + timedelta(seconds=1), hold=HOLD)  # lapsed


def test_the_open_call_refuses_a_second_one_before_its_hold_does(
    engine: Engine, calls: CallJournal
) -> None:
    (pid,) = due_payments(engine, 1)
    calls.record(pid, "cancel", at=T0, exclusive=True, call_key="refund:r1", hold=HOLD)
    other = Hold("cancel:other", HOLD.lease)
    with pytest.raises(CallKeyTaken):
        calls.record(pid, "cancel", at=T0, exclusive=True, call_key="refund:r1", hold=other)
    with pytest.raises(CallInDoubt):
        calls.record(pid, "cancel", at=T0, exclusive=True, call_key="refund:r2", hold=other)


def test_a_repairs_outcome_is_overruled_only_as_it_stands(
    engine: Engine, calls: CallJournal
) -> None:
    (pid,) = due_payments(engine, 1)
    first = calls.record(pid, "cancel", at=T0, exclusive=True)
    calls.finish(first, outcome="repaired:not_refunded", at=T0)
    assert not calls.overrule(first, closed_as="answered", outcome="x", at=T0)
    assert calls.overrule(first, closed_as="repaired:not_refunded", outcome="late", at=T0)
    assert not calls.overrule(first, closed_as="repaired:not_refunded", outcome="again", at=T0)
    second = calls.record(pid, "cancel", at=T0, exclusive=True)
    calls.finish(second, outcome="repaired:not_refunded", at=T0)
    calls.record(pid, "cancel", at=T0, exclusive=True)  # open: the second may not open again
    assert not calls.overrule(second, closed_as="repaired:not_refunded", outcome=None, at=T0)
    assert [i.outcome for i in calls.of_instance(pid)] == ["late", "repaired:not_refunded", None]


def test_intents_closed_alone_skip_those_beside_an_open_or_alike_one(
    engine: Engine, calls: CallJournal
) -> None:
    lonely, paired, beside_open = due_payments(engine, 3)

    def closed(pid: str, outcome: str) -> int:
        intent_id = calls.record(pid, "cancel", at=T0, exclusive=True)
        calls.finish(intent_id, outcome=outcome, at=T0)
        return intent_id

    alone = closed(lonely, "doubt:a")
    closed(lonely, "answered")  # settled: no bar
    calls.record(lonely, "inquiry", at=T0)  # open, but another call
    closed(paired, "doubt:a")
    closed(paired, "doubt:b")  # in doubt beside it: neither is alone
    closed(beside_open, "doubt:a")
    calls.record(beside_open, "cancel", at=T0, exclusive=True)  # open beside it
    assert [i.id for i in calls.closed_alone({"doubt:a", "doubt:b"})] == [alone]
    assert calls.closed_alone({"doubt:a"}, limit=1)[0].id == alone
    assert calls.closed_alone({"answered"})[0].instance_id == lonely
