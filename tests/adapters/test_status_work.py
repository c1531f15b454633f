"""Status checks off the request path, over real HTTP on SQLite and PostgreSQL.

The endpoints record a notification or a browser return and a status_work row, and answer; a
:class:`~adapters.reconcile.worker.StatusWorker` asks NICEPAY later. The loopback simulator
counts the inquiries it answers per tXid, so "one inquiry" is counted where NICEPAY receives it.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import cast

import httpx
import pytest
from sqlalchemy import text

from adapters.events.relay import Backoff
from adapters.inbound.asgi import CALLBACK_PATH, HEALTH_PATH, NOTIFICATION_PATH
from adapters.nicepay.client import INQUIRY_PATH, NicepayClient
from adapters.nicepay.config import InquiryRetry, NicepayCredentials
from adapters.reconcile.work import WorkStatus
from adapters.reconcile.worker import DEFAULT_LEASE, StatusWorker
from adapters.service import PaymentService
from fsm.engine import Engine
from fsm.flows import FLOWS
from fsm.model import Instance
from fsm.store.sql import SqlStore
from tests.adapters.counted_nicepay import counted_inquiries
from tests.adapters.inbound_rig import Replicas, open_replicas
from tests.adapters.test_inbound_amplification import BURST, burst, forged_return

ANSWER_BOUND = 0.1
"""Seconds a notification may take to be answered (the bound the issue demands), met by the
median of several: generous for a request that writes one short transaction on loopback, and
the median keeps one request the shared machine stalled from failing the test."""
NEVER_WAITED = 2.0
"""Seconds no notification may reach: an inquiry on the request path would wait 10 s here."""


@pytest.fixture
def shop(db_url: str) -> Iterator[Replicas]:
    with counted_inquiries() as nicepay, open_replicas(db_url, nicepay) as shop:
        yield shop


def paid_at_nicepay(shop: Replicas, reference_no: str) -> tuple[Instance, dict[str, str]]:
    """A payment NICEPAY holds as paid, and its notification (dropped before it arrived)."""
    payment = shop.start(reference_no)
    assert shop.nicepay.sim.approve(payment.tx_id or "")
    return payment, shop.captured(payment)


def timed_post(shop: Replicas, fields: dict[str, str]) -> tuple[int, float]:
    """POST a notification; its status and how long the answer took, in seconds."""
    started = time.perf_counter()
    status = shop.post(NOTIFICATION_PATH, data=fields).status_code
    return status, time.perf_counter() - started


@pytest.fixture
def impatient(shop: Replicas, db_url: str) -> Iterator[StatusWorker]:
    """A worker with a store of its own whose NICEPAY client gives up after one 0.3 s try."""
    store = SqlStore(db_url)
    config = shop.nicepay.config
    credentials = NicepayCredentials(
        imid=config.imid, merchant_key=config.merchant_key, base_url=shop.nicepay.url
    )
    with httpx.Client(timeout=httpx.Timeout(0.3)) as http:
        once = InquiryRetry(attempts=1, base_delay=0.0, max_delay=0.0)
        client = NicepayClient(http, credentials, clock=shop.clock, inquiry_retry=once)
        engine = Engine(store, flows=FLOWS, clock=shop.clock)
        service = PaymentService(
            engine, client, store=store, notification_url="n/a", callback_url="n/a"
        )
        yield StatusWorker(service)
    store.dispose()


def test_notifications_are_answered_at_once_while_nicepay_black_holes_inquiries(
    shop: Replicas, impatient: StatusWorker
) -> None:
    paid = [paid_at_nicepay(shop, f"FAST-{n}") for n in range(5)]
    shop.nicepay.sim.faults.response(INQUIRY_PATH, timeout=True, times=None)  # never answered
    assert shop.get(HEALTH_PATH).status_code == 200  # the connection is open before timing

    answers = [timed_post(shop, notice) for _, notice in paid[:2]]
    # While a worker waits on NICEPAY for those, the others are answered as fast.
    waiting = threading.Thread(target=impatient.drain)
    waiting.start()
    answers += [timed_post(shop, notice) for _, notice in paid[2:]]
    waiting.join()
    statuses, took = [status for status, _ in answers], [took for _, took in answers]
    assert statuses == [200] * len(paid)
    # An inquiry on the request path would hold it for the serving client's 10 s timeout.
    assert max(took) < NEVER_WAITED, f"answered in {took}"
    assert statistics.median(took) < ANSWER_BOUND, f"answered in {took}"
    ids = {payment.id for payment, _ in paid}
    waiting_work = impatient.work.items(status=WorkStatus.PENDING)
    assert {item.instance_id for item in waiting_work} == ids
    assert "ProviderTimeout" in {item.last_error for item in waiting_work}
    assert "paid" not in {shop.engine.get(payment_id).state for payment_id in ids}

    # NICEPAY answers again; once the retries are due, the worker settles every payment.
    shop.nicepay.sim.faults.clear()
    shop.clock.advance(timedelta(minutes=1))
    assert shop.work().done == len(paid)
    assert {shop.engine.get(payment_id).state for payment_id in ids} == {"paid"}


def test_fifty_callbacks_for_one_payment_cause_one_inquiry(shop: Replicas) -> None:
    payment = shop.start("ONE-CHECK")

    def callback(n: int) -> httpx.Response:
        return shop.get(CALLBACK_PATH, replica=n, params=forged_return(payment, n))

    assert burst(BURST, callback) == [200] * BURST
    # Later throttle slots, while the check still waits, add no work: still one check.
    for _ in range(2):
        shop.clock.advance(timedelta(seconds=30))
        assert burst(BURST // 2, callback) == [200] * (BURST // 2)
    (waiting,) = shop.service.status_work.items(instance_id=payment.id)
    assert waiting.status == WorkStatus.PENDING
    assert shop.inquiries(payment) == 0

    assert shop.work().done == 1
    assert shop.inquiries(payment) == 1
    (done,) = shop.service.status_work.items(instance_id=payment.id)
    assert (done.status, done.attempts) == (WorkStatus.DONE, 1)


def test_work_a_stopped_worker_held_goes_to_another_once_its_lease_lapses(
    shop: Replicas,
) -> None:
    payment, notice = paid_at_nicepay(shop, "LAPSE")
    assert shop.post(NOTIFICATION_PATH, data=notice).status_code == 200
    stopped, other = shop.workers

    # A worker claims the check and stops before it asks (the process is gone).
    (claimed,) = stopped.work.claim(shop.clock.now(), owner=stopped.owner, lease=stopped.lease)
    assert claimed.instance_id == payment.id

    # Within the lease no other worker, on any replica, asks about it.
    assert other.drain().claimed == 0
    shop.clock.advance(DEFAULT_LEASE - timedelta(seconds=1))
    assert other.drain().claimed == 0
    assert shop.inquiries(payment) == 0

    shop.clock.advance(timedelta(seconds=2))
    assert other.drain().done == 1
    assert (shop.inquiries(payment), shop.engine.get(payment.id).state) == (1, "paid")
    # The stopped worker's claim is gone: settling it now changes nothing.
    assert not stopped.work.done(claimed.id, owner=stopped.owner, now=shop.clock.now())


def test_workers_racing_on_one_database_ask_about_each_payment_once(shop: Replicas) -> None:
    payments = [paid_at_nicepay(shop, f"RACE-{n}") for n in range(6)]
    for n, (_, notice) in enumerate(payments):
        assert shop.post(NOTIFICATION_PATH, replica=n, data=notice).status_code == 200
    workers = [*shop.workers, *(StatusWorker(service) for service in shop.services)]
    start = threading.Barrier(len(workers))
    done = [0] * len(workers)

    def race(index: int) -> None:
        start.wait()
        done[index] = workers[index].drain().done

    threads = [threading.Thread(target=race, args=(n,)) for n in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(done) == len(payments)
    assert [shop.inquiries(payment) for payment, _ in payments] == [1] * len(payments)
    assert {shop.engine.get(payment.id).state for payment, _ in payments} == {"paid"}


def test_a_check_nicepay_keeps_failing_is_abandoned_to_the_payments_deadline(
    shop: Replicas,
) -> None:
    payment, notice = paid_at_nicepay(shop, "GIVE-UP")
    shop.nicepay.sim.faults.response(INQUIRY_PATH, status=503, body=b"busy", times=None)
    assert shop.post(NOTIFICATION_PATH, data=notice).status_code == 200
    worker = StatusWorker(shop.service, backoff=Backoff(first=timedelta(seconds=5), max_attempts=2))

    assert worker.drain().retried == 1
    assert worker.drain().claimed == 0  # not due before its backoff
    shop.clock.advance(timedelta(seconds=5))
    assert worker.drain().abandoned == 1
    (given_up,) = shop.service.status_work.items(instance_id=payment.id)
    assert (given_up.status, given_up.attempts) == (WorkStatus.ABANDONED, 2)
    assert given_up.last_error == "ProviderUnavailable"

    # The payment waits in its status-check state, whose deadline asks again.
    waiting = shop.engine.get(payment.id)
    assert waiting.state == "status_check_requested"
    assert waiting.deadline_at is not None
    shop.nicepay.sim.faults.clear()
    assert shop.service.leases.due(waiting.deadline_at) != []


@contextmanager
def journal_away(store: SqlStore) -> Iterator[None]:
    """The inbound journal's table renamed away, so that journalling a request fails."""
    with store.transaction() as conn:
        conn.execute(text("ALTER TABLE inbound_attempt RENAME TO inbound_attempt_away"))
    try:
        yield
    finally:
        with store.transaction() as conn:
            conn.execute(text("ALTER TABLE inbound_attempt_away RENAME TO inbound_attempt"))


def unmoved(shop: Replicas, before: Instance) -> None:
    """Nothing of a request whose journal entry failed is stored: no step, entry or check."""
    assert shop.engine.get(before.id) == before
    assert len(shop.engine.history(before.id)) == before.version
    assert shop.service.status_work.items(instance_id=before.id) == []
    assert shop.service.inbound.latest(instance_id=before.id) == []


def test_a_step_is_never_stored_without_its_journal_entry_and_its_check(shop: Replicas) -> None:
    payment, notice = paid_at_nicepay(shop, "ONE-WRITE")
    store, work = cast(SqlStore, shop.engine.store), shop.service.status_work

    # The journal entry fails: the step it rides with is rolled back, and no check is asked.
    with journal_away(store):
        assert shop.post(NOTIFICATION_PATH, data=notice).status_code == 503
    unmoved(shop, payment)

    # NICEPAY, answered 503, sends it again: not a duplicate, so it applies and asks.
    assert shop.post(NOTIFICATION_PATH, data=notice).status_code == 200
    (asked,) = work.items(instance_id=payment.id)
    assert asked.status == WorkStatus.PENDING
    (journalled,) = shop.service.inbound.latest(instance_id=payment.id)
    assert journalled.outcome == "accepted"
    assert shop.work().done == 1
    assert (shop.inquiries(payment), shop.engine.get(payment.id).state) == (1, "paid")


def test_a_browser_return_is_never_stored_without_its_journal_entry_and_its_check(
    shop: Replicas,
) -> None:
    payment = shop.start("ONE-RETURN")
    with journal_away(cast(SqlStore, shop.engine.store)):
        assert shop.get(CALLBACK_PATH, params=forged_return(payment, 1)).status_code == 503
    unmoved(shop, payment)

    assert shop.get(CALLBACK_PATH, params=forged_return(payment, 1)).status_code == 200
    assert shop.engine.get(payment.id).state == "status_check_requested"
    (asked,) = shop.service.status_work.items(instance_id=payment.id)
    assert (asked.status, asked.tx_id_hint) == (WorkStatus.PENDING, payment.tx_id)
    (journalled,) = shop.service.inbound.latest(instance_id=payment.id)
    assert (journalled.endpoint, journalled.outcome) == ("callback", "accepted")
