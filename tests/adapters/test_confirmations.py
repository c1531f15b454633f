"""The merchant confirms outcomes to the customer: ``confirm_order`` and ``confirm_link``.

From version 2 of the built-in flows no timer confirms an order: the merchant's step is recorded
(with its event), a repeat is a duplicate, a payment without an outcome or an actor the flow does
not allow is refused with a typed error and left as it was, an outcome nobody confirmed is
reported, and version 1 payments keep their timer until migrated. On SQLite and PostgreSQL,
NICEPAY being the simulator in-process.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest

from adapters.cli import main
from adapters.errors import NotConfirmable
from adapters.reconcile.deadlines import run_due
from adapters.reconcile.unconfirmed import UnconfirmedWatch, awaiting, unconfirmed
from fsm.definition import Actor
from fsm.errors import ActorNotAllowed, InstanceNotFound, InvalidInstanceData, RejectReason
from fsm.flows import EVENT_TYPES, FLOWS
from fsm.replay import Verdict, replay_instance
from fsm.store.outbox import Outbox
from fsm.store.sql import SqlStore
from tests.adapters.mock_nicepay import Nicepay, ServiceRig, service_rig
from tests.adapters.values import payment_order
from tests.flow_versions import FIRST

LATE = timedelta(days=2)
"""Far past version 1's ten minutes and the report's default half hour."""


@pytest.fixture
def rig(store: SqlStore, nicepay: Nicepay) -> ServiceRig:
    return service_rig(store, nicepay, event_types=EVENT_TYPES)


def settled(rig: ServiceRig, outcome: str, reference_no: str = "ORD-1") -> str:
    """An OVO payment NICEPAY settled with ``outcome`` (approve, decline, expire), as inquired."""
    payment = rig.service.start_payment(payment_order("ovo", reference_no)).instance
    tx_id = rig.sim.transaction(reference_no=reference_no).tx_id
    getattr(rig.sim, outcome)(tx_id)
    rig.service.check_status(payment.id)
    return payment.id


def linked(rig: ServiceRig, link_id: str = "link-1") -> str:
    rig.engine.start("astrapay_link", instance_id=link_id, wallet="astrapay", reference_no="L1")
    rig.engine.fire(
        link_id,
        "confirm_link",
        actor=Actor.PROVIDER_NOTIFICATION,
        idempotency_key="notified",
        payload={"mandate": "MANDATE-1"},
    )
    return link_id


def test_confirm_order_records_the_merchants_step_and_its_event(
    rig: ServiceRig, store: SqlStore
) -> None:
    pid = settled(rig, "approve")
    assert rig.engine.get(pid).state == "paid"
    step = rig.service.confirm_order(pid)
    assert (step.instance.state, step.duplicate) == ("order_confirmed", False)
    last = rig.engine.history(pid)[-1]
    assert (last.event, last.source, last.actor) == ("confirm_order", "paid", "merchant")
    events = Outbox(store).events(payment_id=pid)
    assert [event.type for event in events] == ["payment.paid", "payment.confirmed"]
    assert (events[-1].state, events[-1].transition) == ("order_confirmed", "confirm_order")


def test_confirming_twice_is_a_duplicate(rig: ServiceRig, store: SqlStore) -> None:
    pid = settled(rig, "approve")
    first = rig.service.confirm_order(pid)
    again = rig.service.confirm_order(pid)
    assert (again.duplicate, again.record) == (True, first.record)
    assert [r.event for r in rig.engine.history(pid)].count("confirm_order") == 1
    assert len(Outbox(store).events(payment_id=pid)) == 2
    # a person who told the customer by hand records it first: the merchant's call repeats it
    by_hand = settled(rig, "approve", "ORD-2")
    first = rig.service.confirm_order(by_hand, actor=Actor.OPERATOR)
    again = rig.service.confirm_order(by_hand)
    assert (again.duplicate, again.record.actor, again.state) == (True, "operator", first.state)


def test_an_actor_the_flow_does_not_allow_is_refused_as_such_and_changes_nothing(
    rig: ServiceRig,
) -> None:
    pid = settled(rig, "approve")
    before = rig.engine.get(pid)
    with pytest.raises(ActorNotAllowed) as caught:
        rig.service.confirm_order(pid, actor=Actor.PROVIDER_NOTIFICATION)
    assert (caught.value.reason, caught.value.state) == (RejectReason.WRONG_ACTOR, "paid")
    assert "allowed: ['merchant', 'operator']" in str(caught.value)
    assert rig.engine.get(pid) == before
    assert rig.engine.rejections(pid) == []
    link_id = linked(rig)
    with pytest.raises(ActorNotAllowed):
        rig.service.confirm_link(link_id, actor=Actor.TIMER)
    assert rig.service.confirm_order(pid).instance.state == "order_confirmed"  # key unspent


@pytest.mark.parametrize(
    ("outcome", "state"), [("decline", "failure_confirmed"), ("expire", "expiry_confirmed")]
)
def test_a_failure_is_confirmed_too(
    rig: ServiceRig, store: SqlStore, outcome: str, state: str
) -> None:
    pid = settled(rig, outcome)
    step = rig.service.confirm_order(pid)
    assert step.instance.state == state
    assert Outbox(store).events(payment_id=pid)[-1].type == "payment.confirmed"


def test_a_payment_without_an_outcome_is_refused_and_left_as_it_was(rig: ServiceRig) -> None:
    payment = rig.service.start_payment(payment_order("ovo")).instance
    before = rig.engine.get(payment.id)
    with pytest.raises(NotConfirmable) as caught:
        rig.service.confirm_order(payment.id)
    assert (caught.value.state, caught.value.flow_version) == ("awaiting_approval", 2)
    assert rig.engine.get(payment.id) == before
    assert rig.engine.rejections(payment.id) == []  # nothing recorded, not even a refusal
    with pytest.raises(InstanceNotFound):
        rig.service.confirm_order("no-such-payment")
    with pytest.raises(InvalidInstanceData, match="astrapay_link"):
        rig.service.confirm_order(linked(rig))
    with pytest.raises(InvalidInstanceData, match="ewallet_payment"):
        rig.service.confirm_link(payment.id)


def test_no_timer_confirms_and_the_unconfirmed_payment_is_reported(
    rig: ServiceRig, store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    pid = settled(rig, "approve")
    confirmed = settled(rig, "approve", "ORD-2")
    rig.service.confirm_order(confirmed)
    now = rig.clock.now()
    assert unconfirmed(store, FLOWS, now=now) == []  # not yet past the window
    rig.clock.advance(LATE)
    assert run_due(rig.service) == []  # no deadline: nothing fires on the merchant's behalf
    assert rig.engine.get(pid).state == "paid"
    assert [i.id for i in unconfirmed(store, FLOWS, now=rig.clock.now())] == [pid]
    watch = UnconfirmedWatch(store, FLOWS, every=timedelta(minutes=10))
    with caplog.at_level(logging.WARNING, logger="adapters.reconcile.unconfirmed"):
        assert [i.id for i in watch.check(rig.clock.now()) or []] == [pid]
        assert watch.check(rig.clock.now() + timedelta(minutes=1)) is None  # not again so soon
    (warning,) = [r for r in caplog.records if r.name == "adapters.reconcile.unconfirmed"]
    assert (warning.levelname, warning.__dict__["instance"]) == ("WARNING", pid)
    rig.service.confirm_order(pid)
    assert unconfirmed(store, FLOWS, now=rig.clock.now()) == []


def test_only_the_merchants_states_of_version_2_are_awaited() -> None:
    waiting = {(a.flow, a.version, a.state) for a in awaiting(FLOWS)}
    assert waiting == {
        ("ewallet_payment", 2, "paid"),
        ("ewallet_payment", 2, "failed"),
        ("ewallet_payment", 2, "expired"),
        ("astrapay_payment", 2, "paid"),
        ("astrapay_payment", 2, "failed"),
        ("astrapay_payment", 2, "expired"),
        ("astrapay_link", 2, "linked"),
    }


def test_version_1_keeps_its_timer_until_migrated_then_the_merchant_confirms(
    store: SqlStore, nicepay: Nicepay
) -> None:
    old = service_rig(store, nicepay, flows=FIRST, event_types=EVENT_TYPES)
    overdue = settled(old, "approve")
    waiting = settled(old, "approve", "ORD-2")
    old.clock.advance(timedelta(minutes=10, seconds=1))
    new = service_rig(store, nicepay, event_types=EVENT_TYPES)
    assert {m.instance_id for m in new.engine.migrate("ewallet_payment", 1, 2, by="ops")} == {
        overdue,
        waiting,
    }
    # an old payment that stayed on version 1 is confirmed by its timer, as version 1 says
    kept = settled(old, "approve", "ORD-3")
    old.clock.advance(timedelta(minutes=10, seconds=1))
    (run,) = run_due(old.service)
    assert (run.instance_id, run.event, run.after) == (kept, "confirm_order", "order_confirmed")
    assert old.engine.history(kept)[-1].actor == "timer"
    told = old.service.confirm_order(kept)  # the merchant's call after the timer: a repeat
    assert (told.duplicate, told.record.actor) == (True, "timer")
    # the migrated ones wait for the merchant, however late
    new.clock.advance(LATE)
    assert run_due(new.service) == []
    step = new.service.confirm_order(waiting)
    assert (step.instance.state, step.instance.flow_version) == ("order_confirmed", 2)
    lineage = FLOWS.lineage("ewallet_payment")
    for pid in (overdue, waiting, kept):
        result = replay_instance(lineage, new.engine.get(pid), new.engine.history(pid))
        assert result.verdict == Verdict.CONSISTENT
    versions = [r.flow_version for r in new.engine.history(waiting)]
    assert (versions[0], versions[-2:]) == (1, [2, 2])  # migrated, then confirmed under v2


def test_confirm_link_after_the_account_is_linked(rig: ServiceRig, store: SqlStore) -> None:
    link_id = linked(rig)
    step = rig.service.confirm_link(link_id)
    assert (step.instance.state, step.duplicate) == ("registration_confirmed", False)
    assert rig.service.confirm_link(link_id).duplicate
    events = Outbox(store).events(payment_id=link_id)
    assert [event.type for event in events] == ["link.linked", "link.confirmed"]
    unlinked = rig.engine.fire(
        link_id, "unlink", actor=Actor.MERCHANT, idempotency_key="unlink", payload={}
    )
    assert unlinked.instance.state == "unlinked"  # a confirmed account may still be unlinked
    rig.engine.start("astrapay_link", instance_id="link-2", wallet="astrapay", reference_no="L2")
    with pytest.raises(NotConfirmable, match="link_requested"):
        rig.service.confirm_link("link-2")
    assert rig.engine.get("link-2").version == 0


def test_the_command_lists_what_is_unconfirmed(
    rig: ServiceRig, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pid = settled(rig, "approve")  # on the tests' clock, long before the command's now
    rig.service.confirm_order(settled(rig, "decline", "ORD-2"))
    capsys.readouterr()
    assert main(["unconfirmed", "--db", db_url, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["unconfirmed"]
    assert [(entry["id"], entry["state"]) for entry in listed] == [(pid, "paid")]
    rig.service.confirm_order(pid)
    assert main(["unconfirmed", "--db", db_url]) == 0
    assert capsys.readouterr().out == "every outcome is confirmed\n"
    with pytest.raises(SystemExit) as refused:
        main(["unconfirmed", "--db", db_url, "--after", "-1"])
    assert refused.value.code == 2
    assert "--after: -1 is not a number of minutes" in capsys.readouterr().err
