"""One live payment per flow and referenceNo, so a notification always finds its payment.

A second start with the reference of a payment that is not final yet (a double click, two
replicas) raises ``ReferenceInUse`` before anything is stored or sent to NICEPAY; once the first
is final a new one may start, and notifications go to the live one. SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from adapters.inbound.handler import NotificationHandler
from adapters.nicepay.client import REGISTRATION_PATH
from adapters.reconcile.deadlines import run_due
from adapters.service import Started
from fsm.errors import InstanceNotFound, ReferenceInUse
from fsm.store.sql import SqlStore
from tests.adapters.mock_nicepay import (
    Nicepay,
    ServiceRig,
    delivered,
    link_at_nicepay,
    linked_account,
    service_rig,
    submit_at_nicepay,
)
from tests.adapters.values import astrapay_notification, link_order, payment_order
from tests.adapters.values import form_request as form


def start(rig: ServiceRig, wallet: str, payment_id: str, reference_no: str = "ORD-1") -> Started:
    link_id = linked_account(rig, f"LNK-{payment_id}").id if wallet == "astrapay" else None
    order = payment_order(wallet, reference_no, link_id=link_id)
    return rig.service.start_payment(order, payment_id=payment_id)


@pytest.mark.parametrize("wallet", ["dana", "astrapay"])
def test_a_second_live_payment_with_the_reference_is_refused_before_anything_is_sent(
    rig: ServiceRig, wallet: str
) -> None:
    first = start(rig, wallet, "pay-1").instance
    registrations = len(rig.line.sent(REGISTRATION_PATH))
    with pytest.raises(ReferenceInUse) as refused:
        start(rig, wallet, "pay-2")
    assert (refused.value.live_id, refused.value.reference_no) == (first.id, "ORD-1")
    assert len(rig.line.sent(REGISTRATION_PATH)) == registrations  # nothing sent
    with pytest.raises(InstanceNotFound):
        rig.engine.get("pay-2")
    assert rig.engine.get(first.id).version == first.version


def test_two_concurrent_starts_with_one_reference_one_wins(db_url: str, nicepay: Nicepay) -> None:
    stores = [SqlStore(db_url) for _ in range(2)]
    stores[0].create_schema()
    rigs = [service_rig(store, nicepay) for store in stores]  # two replicas, one NICEPAY
    barrier = threading.Barrier(2)
    outcomes: list[Started | Exception] = []

    def race(rig: ServiceRig, payment_id: str) -> None:
        barrier.wait()
        try:
            outcomes.append(start(rig, "dana", payment_id))
        except ReferenceInUse as error:
            outcomes.append(error)

    try:
        threads = [
            threading.Thread(target=race, args=(rig, f"pay-{n}")) for n, rig in enumerate(rigs)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        won = [o for o in outcomes if isinstance(o, Started)]
        lost = [o for o in outcomes if isinstance(o, ReferenceInUse)]
        assert (len(won), len(lost)) == (1, 1), outcomes
        assert lost[0].live_id == won[0].instance.id
        assert sum(len(rig.line.sent(REGISTRATION_PATH)) for rig in rigs) == 1
        assert [i.id for i in stores[0].find(reference_no="ORD-1")] == [won[0].instance.id]
    finally:
        for store in stores:
            store.dispose()


def test_once_the_first_is_final_a_new_one_starts_and_its_notification_finds_it(
    rig: ServiceRig, handler: NotificationHandler
) -> None:
    first = start(rig, "astrapay", "pay-1").instance
    (ended,) = run_due(rig.service, now=rig.clock.now() + timedelta(minutes=21))
    assert (ended.instance_id, ended.after) == (first.id, "initiate_failed")  # never came back
    first = rig.engine.get(first.id)

    started = start(rig, "astrapay", "pay-2")
    second = started.instance
    tx_id = submit_at_nicepay(rig, started)
    rig.sim.approve(tx_id)
    assert handler.handle_notification(astrapay_notification(second, tx_id)).status == 200
    assert (rig.engine.get(second.id).state, rig.engine.get(second.id).tx_id) == ("paid", tx_id)
    assert rig.engine.get(first.id) == first


def test_a_link_and_a_payment_sharing_a_reference_each_get_their_notification(
    rig: ServiceRig, handler: NotificationHandler
) -> None:
    linking = rig.service.start_link(link_order("SHARED-1"))
    link = linking.instance
    paying = start(rig, "astrapay", "pay-1", reference_no="SHARED-1")
    payment = paying.instance

    link_at_nicepay(rig, linking)
    assert handler.handle_notification(form(delivered(rig, "link", "SHARED-1"))).status == 200
    assert rig.engine.get(link.id).state == "linked"

    tx_id = submit_at_nicepay(rig, paying)
    rig.sim.approve(tx_id)
    assert handler.handle_notification(astrapay_notification(payment, tx_id)).status == 200
    assert rig.engine.get(payment.id).state == "paid"
