"""The status-check queue against what unauthenticated requests can send: a malformed tXid is
answered and asks plainly, a forged return cannot stand in for a genuine one's hint, asking again
never pushes a waiting check back, and requests arriving while NICEPAY fails cannot keep a
payment's checks from ever being given up. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from adapters.inbound.handler import NotificationHandler
from adapters.reconcile.retention import prune_finished
from adapters.reconcile.work import CheckRequest, WorkStatus
from adapters.reconcile.worker import StatusWorker
from fsm.store.sql import SqlStore
from tests.adapters.mock_nicepay import ServiceRig
from tests.adapters.test_astrapay_hints import at_nicepay, returned, submitted
from tests.adapters.values import new_tx_id

LEASE = timedelta(minutes=1)


def test_a_return_naming_a_malformed_txid_is_answered_and_asks_without_it(
    rig: ServiceRig,
) -> None:
    payment = submitted(rig)
    plain = NotificationHandler(rig.service)  # no worker: the queued check is looked at
    reply = plain.handle_callback(returned(payment, "T" * 65))
    assert reply.status == 200
    [check] = rig.service.status_work.items(instance_id=payment.id)
    assert (check.status, check.tx_id_hint) == (WorkStatus.PENDING, None)


def test_a_forged_return_in_a_later_slot_does_not_replace_a_genuine_ones_hint(
    rig: ServiceRig,
) -> None:
    payment = submitted(rig)
    plain = NotificationHandler(rig.service)
    assert plain.handle_callback(returned(payment, at_nicepay(rig, payment))).status == 200
    rig.clock.advance(timedelta(seconds=30))  # the next throttle slot, before a worker ran
    assert plain.handle_callback(returned(payment, new_tx_id())).status == 200

    StatusWorker(rig.service).drain()

    assert rig.engine.get(payment.id).state == "paid"


def test_asking_again_never_pushes_a_waiting_check_behind_newer_ones(rig: ServiceRig) -> None:
    first, second = submitted(rig, "ORD-1"), submitted(rig, "ORD-2")
    work, now = rig.service.status_work, rig.clock.now()
    work.request(CheckRequest(first.id), now)
    work.request(CheckRequest(second.id), now + timedelta(seconds=1))
    work.request(CheckRequest(first.id), now + timedelta(seconds=2))  # asked again, still waiting

    [claimed] = work.claim(now + timedelta(seconds=3), owner="w", lease=LEASE, limit=1)

    assert claimed.instance_id == first.id


def test_a_check_superseded_while_it_failed_hands_its_attempts_on(rig: ServiceRig) -> None:
    payment = submitted(rig)
    work, now = rig.service.status_work, rig.clock.now()
    work.request(CheckRequest(payment.id), now)
    [running] = work.claim(now, owner="w", lease=LEASE)
    work.request(CheckRequest(payment.id), now)  # a new request while it runs: a second row
    retry_at = now + timedelta(seconds=5)

    work.failed(running.id, owner="w", error="ProviderUnavailable", now=now, retry_at=retry_at)

    [waiting] = work.items(instance_id=payment.id, status=WorkStatus.PENDING)
    assert waiting.id != running.id
    assert waiting.attempts == 1
    [again] = work.claim(now, owner="w", lease=LEASE)
    work.failed(again.id, owner="w", error="ProviderUnavailable", now=now, retry_at=retry_at)
    [retried] = work.items(instance_id=payment.id, status=WorkStatus.PENDING)
    assert retried.attempts == 2


def test_finished_checks_are_pruned_after_their_time_and_waiting_ones_never(
    rig: ServiceRig, store: SqlStore
) -> None:
    done, given_up, waiting = (submitted(rig, f"ORD-{n}") for n in (1, 2, 3))
    work, now = rig.service.status_work, rig.clock.now()
    for payment in (done, given_up):
        work.request(CheckRequest(payment.id), now)
    claimed = {item.instance_id: item for item in work.claim(now, owner="w", lease=LEASE)}
    work.done(claimed[done.id].id, owner="w", now=now)
    work.failed(claimed[given_up.id].id, owner="w", error="ProviderError", now=now, retry_at=None)
    work.request(CheckRequest(waiting.id), now)

    assert prune_finished(store, now) == 0  # nothing finished before the cut-off
    assert prune_finished(store, now + timedelta(seconds=1)) == 2

    assert [item.instance_id for item in work.items()] == [waiting.id]
