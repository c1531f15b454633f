"""Deadlines that back off and give up: the rule, its checks, JSON, diagrams, and the engine.

A deadline with a ``backoff_cap`` waits as long as the instance is old (at least its first wait,
at most the cap), so a status check repeated on every deadline is spaced by doubling from the
payment's start. A deadline that gives up is never stored past the age it gives up at, and from
that age the timer's event is the give-up event (both payment flows: ``flag_for_review``, into
``needs_review``). The engine tests run on SQLite and PostgreSQL with a manual clock.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from fsm import (
    Actor,
    Deadline,
    Engine,
    FlowDefinitionError,
    GiveUp,
    ManualClock,
    SqlStore,
    StateKind,
    StateSpec,
    TransitionNotAllowed,
)
from fsm.definition import flow_from_dict, flow_to_dict
from fsm.flows import FLOWS, GUARDS, Wallet
from fsm.render.diagram import flow_to_dot
from fsm.store import Leases
from tests.fsm.conftest import T0
from tests.fsm.test_definition import base_states, build, only, problems_of

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
GRACE = timedelta(minutes=30)
POLL = Deadline(
    MINUTE, "expire", backoff_cap=HOUR, give_up=GiveUp(10 * HOUR, "expire", {"dana": 2 * HOUR})
)


def spacing(deadline: Deadline, wallet: str | None, checks: int) -> list[timedelta]:
    """The waits between successive deadlines of an instance started at T0 and checked on time."""
    moment, waits = T0, []
    for _ in range(checks):
        due = deadline.due_at(wallet, moment, T0)
        waits.append(due - moment)
        moment = due
    return waits


# --- the rule ----------------------------------------------------------------------------------


def test_a_backing_off_deadline_doubles_from_the_start_up_to_its_cap() -> None:
    plain = Deadline(MINUTE, "expire", backoff_cap=HOUR)
    minutes = [int(w / MINUTE) for w in spacing(plain, None, 10)]
    assert minutes == [1, 1, 2, 4, 8, 16, 32, 60, 60, 60]
    fixed = Deadline(MINUTE, "expire")
    assert spacing(fixed, None, 4) == [MINUTE] * 4


def test_the_first_wait_is_the_wallets_and_a_late_entry_waits_its_age() -> None:
    deadline = Deadline(MINUTE, "check", {"ovo": timedelta(seconds=15)}, backoff_cap=HOUR)
    assert deadline.due_at("ovo", T0, T0) == T0 + timedelta(seconds=15)
    assert deadline.due_at("dana", T0, T0) == T0 + MINUTE
    late = T0 + timedelta(minutes=20)  # entered 20 minutes after the start: waits 20 more
    assert deadline.due_at("ovo", late, T0) == late + timedelta(minutes=20)
    assert deadline.due_at("ovo", T0 + 5 * HOUR, T0) == T0 + 6 * HOUR  # capped


def test_a_deadline_is_never_stored_past_the_age_it_gives_up_at() -> None:
    assert POLL.due_at("dana", T0 + 100 * MINUTE, T0) == T0 + 2 * HOUR  # not 100 minutes on
    assert POLL.due_at("ovo", T0 + 100 * MINUTE, T0) == T0 + 100 * MINUTE + HOUR
    past = T0 + 3 * HOUR  # entered after giving up (e.g. a merchant's check): the usual wait
    assert POLL.due_at("dana", past, T0) == past + HOUR


def test_the_timers_event_turns_to_the_give_up_event_at_that_age() -> None:
    deadline = Deadline(MINUTE, "check", give_up=GiveUp(10 * HOUR, "flag", {"dana": 2 * HOUR}))
    assert deadline.event_at("dana", 2 * HOUR - timedelta(seconds=1)) == "check"
    assert deadline.event_at("dana", 2 * HOUR) == "flag"
    assert deadline.event_at("ovo", 2 * HOUR) == "check"
    assert deadline.event_at(None, 10 * HOUR) == "flag"
    assert Deadline(MINUTE, "check").event_at("dana", 1000 * HOUR) == "check"


# --- checks, JSON and diagrams ------------------------------------------------------------------


def with_waiting(deadline: Deadline) -> list[StateSpec]:
    states = base_states()
    states[1] = StateSpec("waiting", StateKind.WAITING_PROVIDER, deadline=deadline)
    return states


def test_a_cap_shorter_than_the_first_wait_is_named() -> None:
    short = Deadline(MINUTE, "expire", {"dana": HOUR}, backoff_cap=30 * MINUTE)
    problem = only(problems_of(with_waiting(short)))
    assert "deadline of state 'waiting' backs off to a cap shorter than its first wait" in problem


def test_a_give_up_event_the_timer_may_not_fire_is_named() -> None:
    deadline = Deadline(MINUTE, "expire", give_up=GiveUp(HOUR, "confirm"))
    problem = only(problems_of(with_waiting(deadline)))
    assert "'waiting' gives up and fires 'confirm'" in problem
    assert "which the timer may not fire from there" in problem


def test_a_give_up_age_that_is_not_positive_is_named() -> None:
    deadline = Deadline(MINUTE, "expire", give_up=GiveUp(HOUR, "expire", {"dana": -MINUTE}))
    problem = only(problems_of(with_waiting(deadline)))
    assert "'waiting' gives up at an age is not positive" in problem


def test_a_give_up_for_an_unknown_wallet_is_named() -> None:
    give_up = GiveUp(HOUR, "expire", {"gopay": HOUR})
    states = with_waiting(Deadline(MINUTE, "expire", give_up=give_up))
    with pytest.raises(FlowDefinitionError) as info:
        build(states, wallets=("dana",))
    problem = only(info.value.problems)
    assert "'waiting' gives up at an age names unknown wallets ['gopay']" in problem


def test_backoff_and_give_up_survive_json_and_change_the_fingerprint() -> None:
    flow = build(with_waiting(POLL))
    data = flow_to_dict(flow)
    assert data["states"][1]["deadline"]["backoff_cap_seconds"] == 3600.0
    assert data["states"][1]["deadline"]["give_up"] == {
        "after_seconds": 36000.0,
        "event": "expire",
        "per_wallet": {"dana": 7200.0},
    }
    again = flow_from_dict(copy.deepcopy(data), guards=GUARDS)
    assert again.state("waiting").deadline == POLL
    assert again.fingerprint == flow.fingerprint != build().fingerprint
    assert "backoff_cap_seconds" not in flow_to_dict(build())["states"][1]["deadline"]


def test_a_malformed_cap_in_json_is_refused() -> None:
    data: dict[str, Any] = flow_to_dict(build(with_waiting(POLL)))
    data["states"][1]["deadline"]["backoff_cap_seconds"] = 0
    with pytest.raises(FlowDefinitionError, match="backoff_cap_seconds"):
        flow_from_dict(data, guards=GUARDS)


@pytest.mark.parametrize("name", ["ewallet_payment", "astrapay_payment"])
def test_the_payment_diagrams_show_the_backoff_and_the_review_state(name: str) -> None:
    dot = flow_to_dot(FLOWS[name])
    review = next(line for line in dot.splitlines() if line.startswith('  "needs_review" ['))
    assert 'fillcolor="#fce7f3"' in review
    assert "needs a person" in review
    assert "after 24h: check_status" in review
    assert "doubling up to 1h: check_status" in dot
    assert ": flag_for_review" in dot


@pytest.mark.parametrize("name", ["ewallet_payment", "astrapay_payment"])
def test_needs_review_is_unsettled_and_left_only_by_a_settlement(name: str) -> None:
    flow = FLOWS[name]
    review = flow.state("needs_review")
    assert (review.kind, review.final, review.settlement) == (StateKind.REVIEW, False, False)
    assert not review.kind.settled
    exits = {spec.dest for spec in flow.transitions if "needs_review" in spec.sources}
    assert exits - {"needs_review"} == {"paid", "failed", "expired", "voided", "refunded"}
    for spec in flow.transitions:
        if "needs_review" in spec.sources and spec.dest != "needs_review":
            assert spec.actors == {Actor.STATUS_INQUIRY, Actor.OPERATOR}
        if spec.dest == "needs_review" and "needs_review" not in spec.sources:
            assert (spec.event, set(spec.actors)) == (
                "flag_for_review",
                {Actor.TIMER, Actor.OPERATOR},
            )


# --- the engine, on both databases -------------------------------------------------------------

REGISTERED = {"tx_id": "TXDANA0001", "reference_no": "ORD-1"}
TO_CHECK = [
    ("send_registration", Actor.MERCHANT, None),
    ("accept_registration", Actor.PROVIDER_RESPONSE, REGISTERED),
    ("request_payment", Actor.MERCHANT, None),
    ("send_customer", Actor.MERCHANT, None),
    ("check_status", Actor.MERCHANT, None),
]


def checking(engine: Engine, wallet: str, instance_id: str = "pay-1") -> str:
    """A payment of ``wallet`` started at T0, its status check under way at once."""
    payment = engine.start("ewallet_payment", instance_id=instance_id, wallet=wallet, amount=15000)
    for index, (step, actor, payload) in enumerate(TO_CHECK):
        pushed = "push_to_app" if wallet == Wallet.OVO else "redirect_customer"
        event = pushed if step == "send_customer" else step
        engine.fire(payment.id, event, actor=actor, idempotency_key=f"s{index}", payload=payload)
    return payment.id


def timer_checks(engine: Engine, clock: ManualClock, payment_id: str, count: int) -> list[int]:
    """Fire the timer's status check on each deadline; the waits between them, in minutes."""
    waits = []
    for index in range(count):
        payment = engine.get(payment_id)
        assert payment.deadline_at is not None
        waits.append(round((payment.deadline_at - clock.now()) / MINUTE))
        clock.advance(payment.deadline_at - clock.now())
        engine.fire(payment_id, "check_status", actor=Actor.TIMER, idempotency_key=f"t{index}")
    return waits


def test_status_checks_of_a_dana_payment_double_up_to_an_hour(
    engine: Engine, store: SqlStore, clock: ManualClock
) -> None:
    payment_id = checking(engine, "dana")
    assert timer_checks(engine, clock, payment_id, 10) == [1, 1, 2, 4, 8, 16, 32, 60, 60, 60]
    payment = engine.get(payment_id)
    assert payment.state == "status_check_requested"
    assert Leases(store).due(clock.now() + 59 * MINUTE) == []  # nothing due before the hour


def test_an_ovo_payment_is_due_exactly_when_it_gives_up(engine: Engine, clock: ManualClock) -> None:
    payment_id = checking(engine, "ovo")
    assert timer_checks(engine, clock, payment_id, 5) == [1, 1, 2, 4, 8]
    assert clock.now() == T0 + 16 * MINUTE
    giving_up = engine.get(payment_id).deadline_at  # 16 minutes on would pass the review age
    assert giving_up == T0 + timedelta(seconds=55) + GRACE
    deadline = FLOWS["ewallet_payment"].state("status_check_requested").deadline
    assert deadline is not None
    assert deadline.event_at(Wallet.OVO, giving_up - T0) == "flag_for_review"


def test_a_flagged_payment_waits_a_day_and_only_settles_by_inquiry_or_operator(
    engine: Engine, clock: ManualClock
) -> None:
    payment_id = checking(engine, "linkaja")
    clock.advance(5 * MINUTE + GRACE)
    engine.fire(payment_id, "flag_for_review", actor=Actor.TIMER, idempotency_key="flag")
    flagged = engine.get(payment_id)
    assert flagged.state == "needs_review"
    assert flagged.deadline_at == clock.now() + timedelta(days=1)
    assert set(engine.allowed_events(payment_id, Actor.OPERATOR)) == {
        "check_status",
        "confirm_payment",
        "fail_payment",
        "expire_payment",
        "void_payment",
        "refund_payment",
    }
    with pytest.raises(TransitionNotAllowed):
        engine.fire(payment_id, "confirm_payment", actor=Actor.TIMER, idempotency_key="x")
    engine.fire(payment_id, "report_pending", actor=Actor.STATUS_INQUIRY, idempotency_key="p")
    assert engine.get(payment_id).state == "needs_review"  # a pending answer keeps it there
    engine.fire(
        payment_id,
        "expire_payment",
        actor=Actor.OPERATOR,
        idempotency_key="resolved",
        payload={"reason": "NICEPAY's dashboard shows it expired"},
    )
    resolved = engine.get(payment_id)
    assert (resolved.state, resolved.deadline_at) == ("expired", None)
    assert engine.history(payment_id)[-1].actor == Actor.OPERATOR


def test_flagging_is_for_the_timer_and_operators_from_a_polling_state(
    engine: Engine, clock: ManualClock
) -> None:
    payment_id = checking(engine, "dana")
    with pytest.raises(TransitionNotAllowed):
        engine.fire(payment_id, "flag_for_review", actor=Actor.MERCHANT, idempotency_key="m")
    engine.fire(payment_id, "flag_for_review", actor=Actor.OPERATOR, idempotency_key="o")
    assert engine.get(payment_id).state == "needs_review"
    other = engine.start("ewallet_payment", instance_id="pay-2", wallet="dana", amount=15000)
    with pytest.raises(TransitionNotAllowed):
        engine.fire(other.id, "flag_for_review", actor=Actor.OPERATOR, idempotency_key="o")
