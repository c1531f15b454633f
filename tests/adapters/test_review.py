"""No polling forever: status checks back off, and a payment past its window waits for a person.

Each payment runs through the real service and the reconciler's ``run_due`` on SQLite and
PostgreSQL, on the simulator in-process (where the customer opened the page and went no
further), with a manual clock moved to each stored deadline in turn. A payment NICEPAY keeps
reporting as pending gets one last inquiry at its window plus the grace and then waits in
``needs_review`` (not settled, nothing sent but inquiries) until an operator, a later inquiry or
a genuine notification settles it. An unknown code is recorded, counted and logged, and the next
check backs off.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from adapters.nicepay.client import INQUIRY_PATH
from adapters.reconcile.deadlines import DeadlineRun, run_due
from fsm import Actor, Engine, RejectReason, SqlStore
from fsm.model import Instance
from tests.adapters.mock_nicepay import (
    Nicepay,
    ServiceRig,
    inquiries_sent,
    inquiry_answers,
    open_page,
    service_rig,
)
from tests.adapters.test_contract import waiting
from tests.adapters.values import form_request, signed_notification
from tests.adapters.worked import WorkedHandler
from tests.conftest import database

GRACE = timedelta(minutes=30)
REVIEW_AGE = {
    "ovo": timedelta(seconds=55) + GRACE,
    "dana": timedelta(hours=24) + GRACE,
    "linkaja": timedelta(minutes=5) + GRACE,
    "shopeepay": timedelta(minutes=5) + GRACE,
    "astrapay": timedelta(minutes=20 + 15) + GRACE,  # linkInitiate's 20 min, then the assumed 15
}
LAST_STEPS = ["check_status", "report_pending", "flag_for_review"]
EXECUTABLE = Path(sys.executable).parent / "ewallet-fsm"


def pending(rig: ServiceRig, wallet: str, status: str | None = None) -> Instance:
    """A payment of ``wallet`` waiting on its customer, who opened the payment page.

    NICEPAY answers its own pending status (3; OVO, whose push went out, 4), or ``status`` from
    now on.
    """
    payment = waiting(rig, wallet)
    if wallet in {"ovo", "dana", "linkaja"}:  # the others' customers are at the page already
        open_page(rig, payment)
    if status is not None:
        inquiry_answers(rig, status, times=None)
    return payment


def run_deadlines(
    rig: ServiceRig, payment_id: str, *, stop_at: datetime | None = None
) -> list[tuple[datetime, DeadlineRun]]:
    """Move the clock to each stored deadline and run the reconciler, until ``needs_review``.

    Stops early, without running it, at a deadline stored for ``stop_at``. Returns when each
    run happened and what it did.
    """
    done: list[tuple[datetime, DeadlineRun]] = []
    for _ in range(100):
        payment = rig.engine.get(payment_id)
        if payment.state == "needs_review" or payment.deadline_at in (None, stop_at):
            return done
        assert payment.deadline_at is not None
        rig.clock.advance(max(payment.deadline_at - rig.clock.now(), timedelta(0)))
        (run,) = run_due(rig.service)
        assert run.error is None, run
        done.append((rig.clock.now(), run))
    raise AssertionError(f"{payment_id} never reached needs_review")


def steps(engine: Engine, payment_id: str) -> list[tuple[str, str, str]]:
    return [(r.event, r.dest, r.actor) for r in engine.history(payment_id)]


# --- the review state -------------------------------------------------------------------------


@pytest.mark.parametrize("wallet", sorted(REVIEW_AGE))
def test_a_payment_pending_past_its_window_and_grace_ends_in_needs_review(
    rig: ServiceRig, wallet: str
) -> None:
    payment = pending(rig, wallet)

    moments, runs = zip(*run_deadlines(rig, payment.id), strict=True)

    flagged = rig.engine.get(payment.id)
    assert flagged.state == "needs_review"
    assert moments[-1] == payment.created_at + REVIEW_AGE[wallet]  # not a poll later
    assert (runs[-1].event, runs[-1].after) == ("flag_for_review", "needs_review")
    assert {run.event for run in runs[:-1]} == {"check_status"}
    assert flagged.deadline_at == moments[-1] + timedelta(days=1)  # still checked, daily
    history = rig.engine.history(payment.id)
    assert [r.event for r in history[-3:]] == LAST_STEPS  # one last inquiry, then a person
    assert [r.actor for r in history[-3:]] == [Actor.TIMER, Actor.STATUS_INQUIRY, Actor.TIMER]
    assert history[-1].occurred_at == moments[-1]
    flow = rig.engine.flow(flagged.flow)
    assert not any(flow.state(r.dest).kind.settled for r in history)  # nothing settled
    assert {r.url.path for r in rig.line.requests} <= {
        "/nicepay/direct/v2/registration",
        "/nicepay/direct/v2/inquiry",
        "/nicepay/direct/v2/payment",
    }  # no money moved: no cancel, nothing sent twice
    assert inquiries_sent(rig) <= 16  # backed off: a day of DANA is not 1,440 polls
    assert run_due(rig.service, now=moments[-1] + timedelta(hours=23)) == []


def test_the_daily_check_of_a_flagged_payment_settles_it(rig: ServiceRig) -> None:
    payment = pending(rig, "linkaja")
    run_deadlines(rig, payment.id)
    rig.sim.expire(payment.tx_id or "")  # NICEPAY finally reports the expiry
    rig.clock.advance(timedelta(days=1))
    (run,) = run_due(rig.service)
    assert (run.event, run.before, run.after, run.error) == (
        "check_status",
        "needs_review",
        "expired",
        None,
    )
    assert steps(rig.engine, payment.id)[-2:] == [
        ("check_status", "needs_review", Actor.TIMER),
        ("expire_payment", "expired", Actor.STATUS_INQUIRY),
    ]


def test_a_merchants_check_settles_a_flagged_payment(rig: ServiceRig) -> None:
    payment = pending(rig, "dana")
    run_deadlines(rig, payment.id)
    version = rig.engine.get(payment.id).version
    rig.sim.approve(payment.tx_id or "")
    paid = rig.service.check_status(payment.id)
    assert paid.state == "paid"
    assert paid.version == version + 1  # the merchant's check itself moves nothing
    assert steps(rig.engine, payment.id)[-1] == ("confirm_payment", "paid", Actor.STATUS_INQUIRY)


def test_a_genuine_notification_settles_a_flagged_payment(rig: ServiceRig) -> None:
    payment = pending(rig, "shopeepay")
    run_deadlines(rig, payment.id)
    rig.sim.approve(payment.tx_id or "")
    flagged = rig.engine.get(payment.id)
    request = form_request(signed_notification(flagged))
    assert WorkedHandler(rig.service).handle_notification(request).status == 200
    assert rig.engine.get(payment.id).state == "paid"
    (refused,) = [r for r in rig.engine.rejections(payment.id) if r.event == "receive_notification"]
    assert refused.state == "needs_review"  # recorded; its inquiry decided


def test_an_operator_resolves_a_flagged_payment_with_the_reason(rig: ServiceRig) -> None:
    payment = pending(rig, "ovo")
    run_deadlines(rig, payment.id)
    why = {"reason": "NICEPAY support: the push failed", "by": "ops-ani"}
    rig.engine.fire(
        payment.id, "fail_payment", actor=Actor.OPERATOR, idempotency_key="ops-1", payload=why
    )
    resolved = rig.engine.get(payment.id)
    assert (resolved.state, resolved.deadline_at) == ("failed", None)
    last = rig.engine.history(payment.id)[-1]
    assert (last.source, last.actor, dict(last.payload)) == ("needs_review", Actor.OPERATOR, why)


def test_a_last_check_that_fails_still_hands_the_payment_to_a_person(rig: ServiceRig) -> None:
    payment = pending(rig, "linkaja")
    giving_up = payment.created_at + REVIEW_AGE["linkaja"]
    run_deadlines(rig, payment.id, stop_at=giving_up)
    rig.clock.advance(giving_up - rig.clock.now())
    rig.sim.faults.response(INQUIRY_PATH, status=503, times=2)
    (run,) = run_due(rig.service)
    assert (run.event, run.after, run.error) == ("flag_for_review", "needs_review", None)
    assert [r.event for r in rig.engine.history(payment.id)[-2:]] == [
        "check_status",
        "flag_for_review",
    ]


# --- unknown codes ------------------------------------------------------------------------------


def test_an_unknown_code_is_recorded_counted_logged_and_backs_off(
    rig: ServiceRig, caplog: pytest.LogCaptureFixture
) -> None:
    payment = pending(rig, "ovo", status="7")
    caplog.set_level(logging.WARNING, logger="adapters.reconcile.status")

    moments = [moment for moment, _run in run_deadlines(rig, payment.id)]

    waits = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(moments)]
    assert waits[:5] == [60, 115, 230, 460, 920]  # from 55 s on, doubling with the age
    assert rig.engine.get(payment.id).state == "needs_review"  # and then a person looks
    store = database(rig.engine)
    count = store.count_rejections(RejectReason.UNKNOWN_STATUS, instance_id=payment.id)
    assert count == len(moments) == inquiries_sent(rig)
    assert store.count_rejections(RejectReason.UNKNOWN_STATUS) == count
    refused = rig.engine.rejections(payment.id)[-1]
    assert (refused.event, refused.actor, refused.payload["status"]) == (
        "report_status",
        Actor.STATUS_INQUIRY,
        "7",
    )
    warned = [r for r in caplog.records if r.getMessage() == "unknown inquiry status"]
    assert len(warned) == count
    fields = {(r.__dict__["wallet"], r.__dict__["status"], r.__dict__["instance"]) for r in warned}
    assert fields == {("ovo", "7", payment.id)}


def test_an_unknown_code_of_any_length_is_recorded_and_counted(rig: ServiceRig) -> None:
    payment = pending(rig, "dana", status="Z" * 300)
    checked = rig.service.check_status(payment.id)
    assert checked.state == "status_check_requested"
    (refused,) = rig.engine.rejections(payment.id)
    assert (refused.reason, refused.payload["status"]) == (RejectReason.UNKNOWN_STATUS, "Z" * 300)
    assert refused.detail == "inquiry status 'ZZZZZZZZZZZZZZZZ' is not in the inquiry table"
    unknown = RejectReason.UNKNOWN_STATUS
    assert database(rig.engine).count_rejections(unknown, instance_id=payment.id) == 1


def test_history_shows_how_many_unknown_codes_a_payment_got(
    tmp_path: Path, nicepay: Nicepay
) -> None:
    url = f"sqlite:///{tmp_path / 'review.sqlite3'}"
    store = SqlStore(url)
    store.create_schema()
    try:
        rig = service_rig(store, nicepay)
        payment = pending(rig, "dana", status="X")
        rig.service.check_status(payment.id)
        rig.service.check_status(payment.id, actor=Actor.TIMER)
    finally:
        store.dispose()
    shown = history(payment.id, url, "--json")
    assert json.loads(shown)["unknown_status_count"] == 2
    assert "inquiry answers with an unknown status code: 2" in history(payment.id, url)


def history(payment_id: str, url: str, *flags: str) -> str:
    """What the installed ``ewallet-fsm history`` prints, run on this tree."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    argv = [str(EXECUTABLE), "history", payment_id, "--db", url, *flags]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)  # noqa: S603 - our own console script
    assert done.returncode == 0, done.stderr
    return done.stdout
