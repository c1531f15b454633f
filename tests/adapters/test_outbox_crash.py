"""An event exists if and only if its step committed, whenever a process dies: processes that
SIGKILL themselves before a step's commit, after it, and in the middle of a delivery (see
``outbox_worker``). A later relay then delivers every committed event at least once."""

from __future__ import annotations

import multiprocessing
import signal
from datetime import timedelta
from pathlib import Path

from adapters.events import CallableSink, Relay
from fsm import ManualClock, SqlStore, SystemClock
from fsm.flows import EVENT_TYPES
from fsm.store.outbox import Delivery, Outbox
from tests.adapters.events_rig import Recorder
from tests.adapters.outbox_worker import POINTS, crash_at


def test_events_follow_commits_through_sigkill_and_are_delivered_at_least_once(
    db_url: str, tmp_path: Path
) -> None:
    store = SqlStore(db_url)
    store.create_schema()
    handed = tmp_path / "handed.txt"
    spawn = multiprocessing.get_context("spawn")
    for point in POINTS:
        child = spawn.Process(target=crash_at, args=(db_url, point, str(handed)))
        child.start()
        child.join(timeout=120)
        assert child.exitcode == -signal.SIGKILL, point

    outbox = Outbox(store)
    for point in POINTS:  # each committed step into a typed state has its one event, no other
        typed = [
            (record.seq, EVENT_TYPES["ewallet_payment"][record.dest])
            for record in store.history(point)
            if record.dest in EVENT_TYPES["ewallet_payment"]
        ]
        stored = [(event.version, event.type) for event in outbox.events(payment_id=point)]
        assert stored == typed, point
    assert store.get("before_commit").state == "status_check_requested"
    assert outbox.events(payment_id="before_commit") == []
    assert store.get("after_commit").state == "paid"
    [handed_id] = handed.read_text().split()
    assert outbox.count(Delivery.PENDING) == 3  # the event handed over was never recorded
    assert handed_id in {event.id for event in outbox.events()}

    later = ManualClock(SystemClock().now() + timedelta(minutes=2))  # past the dead relay's lease
    recorder = Recorder()
    assert Relay(store, CallableSink(recorder), clock=later).drain().delivered == 3
    assert {event.id for event in recorder.events} == {event.id for event in outbox.events()}
    assert handed_id in {event.id for event in recorder.events}  # handed over twice in all
    assert outbox.count(Delivery.DELIVERED) == 3
    store.dispose()
