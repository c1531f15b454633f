"""The relay: every committed event delivered at least once, in order per payment, retried with a
backoff, dead after its last attempt, and redelivered on an operator's word; replicas claim
different events. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import update

from adapters.events import Backoff, CallableSink, Relay
from fsm import ManualClock, SqlStore
from fsm.errors import InvalidInstanceData
from fsm.events import Event
from fsm.store.outbox import Delivery, Outbox
from fsm.store.tables import OUTBOX_TABLE
from tests.adapters.events_rig import Recorder, event_engine, settle
from tests.fsm.conftest import T0
from tests.fsm.test_claims import run_together

NO_WAIT = Backoff(first=timedelta(seconds=10), longest=timedelta(minutes=1), max_attempts=3)


def test_every_event_is_delivered_once_in_order_per_payment(store: SqlStore) -> None:
    clock = ManualClock(T0)
    ids = settle(event_engine(store, clock), clock, 3)
    recorder = Recorder()
    relay = Relay(store, CallableSink(recorder), clock=clock)

    first = relay.run_once()
    assert (first.delivered, first.claimed) == (3, 3)  # one event per payment per round
    assert relay.drain().delivered == 3
    assert relay.run_once().claimed == 0

    outbox = Outbox(store)
    for pid in ids:
        types = [event.type for event in recorder.events if event.payment_id == pid]
        assert types == ["payment.paid", "payment.confirmed"]
    assert Counter(event.id for event in recorder.events) == Counter(
        event.id for event in outbox.events()
    )
    assert outbox.count(Delivery.DELIVERED) == 6
    assert outbox.count(Delivery.PENDING) == 0


def test_a_failed_event_waits_its_backoff_and_holds_its_payments_next_one(store: SqlStore) -> None:
    clock = ManualClock(T0)
    [pid] = settle(event_engine(store, clock), clock, 1)
    failing = {"on": True}
    recorder = Recorder(fail=lambda event: failing["on"])
    relay = Relay(store, CallableSink(recorder), clock=clock, backoff=NO_WAIT)

    assert relay.run_once().retried == 1
    assert relay.run_once().claimed == 0  # not due yet, and the next event waits behind it
    [paid, confirmed] = Outbox(store).entries(payment_id=pid)
    assert (paid.status, paid.attempts, paid.last_error) == (
        Delivery.PENDING,
        1,
        "ConnectionError: consumer down",
    )
    assert paid.next_attempt_at == clock.now() + timedelta(seconds=10)
    assert confirmed.attempts == 0

    clock.advance(timedelta(seconds=10))
    failing["on"] = False
    assert relay.drain().delivered == 2
    assert [event.type for event in recorder.events] == ["payment.paid", "payment.confirmed"]


def test_an_event_is_dead_after_its_last_attempt_and_can_be_redelivered(store: SqlStore) -> None:
    clock = ManualClock(T0)
    [pid] = settle(event_engine(store, clock), clock, 1)
    failing = {"on": True}
    recorder = Recorder(fail=lambda event: failing["on"] and event.type == "payment.paid")
    relay = Relay(store, CallableSink(recorder), clock=clock, backoff=NO_WAIT)

    waits = []
    for _ in range(NO_WAIT.max_attempts):
        relay.run_once()
        entry = Outbox(store).entries(payment_id=pid)[0]
        waits.append(entry.next_attempt_at - clock.now())
        clock.advance(timedelta(minutes=5))
    outbox = Outbox(store)
    paid = outbox.entries(payment_id=pid)[0]
    assert (paid.status, paid.attempts) == (Delivery.DEAD, NO_WAIT.max_attempts)
    assert waits[:2] == [timedelta(seconds=10), timedelta(seconds=20)]  # doubling
    assert relay.drain().delivered == 1  # a dead event no longer holds the next one back
    assert [event.type for event in recorder.events] == ["payment.confirmed"]

    failing["on"] = False
    assert outbox.redeliver(paid.event_id, now=clock.now())
    assert not outbox.redeliver("no-such-event", now=clock.now())
    assert relay.drain().delivered == 1
    assert outbox.entries(payment_id=pid)[0].status == Delivery.DELIVERED
    assert [event.type for event in recorder.events][-1] == "payment.paid"


def test_a_claim_that_lapsed_goes_to_another_relay(store: SqlStore) -> None:
    clock = ManualClock(T0)
    settle(event_engine(store, clock), clock, 1)
    outbox = Outbox(store)
    claimed = outbox.claim(clock.now(), owner="dead-relay", lease=timedelta(minutes=1))
    assert len(claimed) == 1
    recorder = Recorder()
    relay = Relay(store, CallableSink(recorder), clock=clock)
    assert relay.run_once().claimed == 0
    clock.advance(timedelta(minutes=1, seconds=1))
    assert relay.drain().delivered == 2
    assert not outbox.delivered(claimed[0].event_id, owner="dead-relay", now=clock.now())


def test_an_unreadable_event_is_dead_at_once_and_holds_nothing_back(store: SqlStore) -> None:
    clock = ManualClock(T0)
    [broken_pid, other_pid] = settle(event_engine(store, clock), clock, 2)
    outbox = Outbox(store)
    [paid, confirmed] = outbox.entries(payment_id=broken_pid)
    with store.transaction() as conn:
        conn.execute(
            update(OUTBOX_TABLE).where(OUTBOX_TABLE.c.id == paid.event_id).values(body="{not json")
        )
    recorder = Recorder()

    done = Relay(store, CallableSink(recorder), clock=clock).drain()

    assert (done.delivered, done.dead) == (3, 1)  # the other payment's two, the broken one's next
    assert [e.id for e in recorder.events if e.payment_id == broken_pid] == [confirmed.event_id]
    assert {e.payment_id for e in recorder.events} == {broken_pid, other_pid}
    assert outbox.count(Delivery.DEAD) == 1
    [dead, delivered] = outbox.entries(payment_id=broken_pid)  # listed for a person
    assert (dead.event_id, dead.event, dead.status) == (paid.event_id, None, Delivery.DEAD)
    assert dead.last_error == "unreadable: the stored body is not an event"
    assert (delivered.event, delivered.status) == (confirmed.event, Delivery.DELIVERED)
    assert [e.id for e in outbox.events(payment_id=broken_pid)] == [confirmed.event_id]
    with pytest.raises(InvalidInstanceData, match="cannot be redelivered"):
        outbox.redeliver(paid.event_id, now=clock.now())
    assert outbox.entries(payment_id=broken_pid)[0] == dead  # left as it was


@pytest.mark.parametrize("replicas", [2, 4])
def test_replicas_deliver_each_event_once(store: SqlStore, replicas: int) -> None:
    clock = ManualClock(T0)
    settle(event_engine(store, clock), clock, 12)
    recorder = Recorder()
    stores = [SqlStore(store.url) for _ in range(replicas)]
    barrier = threading.Barrier(replicas)
    errors: list[BaseException] = []

    def relay_on(_: int, own: SqlStore) -> None:
        try:
            relay = Relay(own, CallableSink(recorder), clock=clock, batch=3)
            barrier.wait(timeout=10)
            for _ in range(40):
                relay.run_once()
        except BaseException as error:  # reported below
            errors.append(error)

    run_together(stores, relay_on)
    assert errors == []
    counts = Counter(event.id for event in recorder.events)
    assert len(counts) == 24
    assert set(counts.values()) == {1}
    assert Outbox(store).count(Delivery.DELIVERED) == 24


def test_a_slow_sink_leaves_the_rest_of_a_batch_to_lapse_instead_of_sending_it_late(
    store: SqlStore,
) -> None:
    clock = ManualClock(T0)
    settle(event_engine(store, clock), clock, 5)
    recorder = Recorder()

    def slow(event: Event) -> None:
        recorder(event)
        clock.advance(timedelta(seconds=20))  # each delivery takes a third of the lease

    relay = Relay(store, CallableSink(slow), clock=clock, lease=timedelta(minutes=1))
    assert relay.run_once().delivered == 2  # 0 s and 20 s; at 40 s half the lease is gone
    other = Relay(store, CallableSink(recorder), clock=clock)
    # Only the two delivered payments' next events: the other three are still claimed.
    assert other.run_once().delivered == 2
    clock.advance(timedelta(seconds=21))
    assert other.drain().delivered == 6
    assert len(recorder.events) == len({event.id for event in recorder.events}) == 10
