"""AstraPay under injected faults ends as NICEPAY says once the faults stop and the reconciler runs.

Hypothesis draws, for each payment against the loopback simulator: whether the customer pays or
declines, forged browser returns (bogus tXids) before and after the customer, what happens to
NICEPAY's notification (on time, delayed, duplicated, reordered, dropped) and to the browser's
own return (delivered or dropped), and 503s and timeouts on the merchant's next inquiries. Then
the faults stop, the reconciler runs its passes, and the payment's state must be the one NICEPAY's
status maps to, with NICEPAY's tXid bound. The merchant can only learn a tXid from the
notification or the return, so at least one of them reaches it (a payment that learns none is a
case for review, not for this property). One rig per database serves every example; on the way
out every payment replays and was settled only by an inquiry (``e2e_rig.audit_store``).
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from adapters.nicepay.config import InquiryRetry
from adapters.reconcile.recovery import Reconciler
from adapters.simulator import CustomerAction
from adapters.simulator.rig import IMID
from adapters.wallets.status_codes import event_for_status
from fsm.flows import Wallet
from fsm.model import Instance
from tests.adapters.e2e_rig import Rig, open_rig, sim_config
from tests.conftest import database

EXAMPLES = {"sqlite": 25, "postgresql": 8}
INQUIRY = "/direct/v2/inquiry"
CHECK = "status_check_requested"
PASSES = 6
"""Reconciler passes at most: each asks about a few hints, and a forged one may come first."""
NOTIFICATIONS = ("on_time", "delayed", "duplicated", "reordered", "dropped")
LONG = timedelta(minutes=5)
PAY, DECLINE = CustomerAction.PAY, CustomerAction.DECLINE


@dataclass(frozen=True)
class Plan:
    """What one payment meets."""

    action: CustomerAction
    notification: str
    """One of :data:`NOTIFICATIONS`; a declined payment gets none from NICEPAY anyway."""
    returns: bool
    """Whether the browser's own return reaches the merchant."""
    forged_before: int
    forged_after: int
    inquiry_faults: tuple[str, ...]
    """``"503"`` or ``"timeout"`` for each of the merchant's next inquiries."""

    @property
    def notified(self) -> bool:
        return self.action is CustomerAction.PAY and self.notification != "dropped"


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    action = draw(st.sampled_from([CustomerAction.PAY, CustomerAction.DECLINE]))
    notification = draw(st.sampled_from(NOTIFICATIONS))
    notified = action is CustomerAction.PAY and notification != "dropped"
    returns = draw(st.booleans()) if notified else True  # one of them must tell the merchant
    faults = st.lists(st.sampled_from(["503", "503", "timeout"]), max_size=4).map(tuple)
    return Plan(
        action=action,
        notification=notification,
        returns=returns,
        forged_before=draw(st.integers(0, 2)),
        forged_after=draw(st.integers(0, 2)),
        inquiry_faults=draw(faults),
    )


def forge_return(rig: Rig, reference_no: str) -> None:
    """An attacker's return to callBackUrl: the order's referenceNo and a tXid never issued."""
    bogus = f"{IMID}05{secrets.randbelow(10**18):018d}"
    params = {"tXid": bogus, "referenceNo": reference_no, "resultCd": "0000"}
    rig.http.get(rig.service.callback_url, params=params)


def arm(rig: Rig, reference_no: str, plan: Plan) -> None:
    faults = rig.sim.faults
    for fault in plan.inquiry_faults:  # queued: each breaks one inquiry, in order
        if fault == "timeout":
            faults.response(INQUIRY, timeout=True)
        else:
            faults.response(INQUIRY, status=503)
    if not plan.returns:
        faults.callback(reference_no)
    breaks: dict[str, dict[str, Any]] = {
        "delayed": {"delay": 0.2},
        "duplicated": {"duplicate": 1},
        "reordered": {"reorder": True},
        "dropped": {"drop": True},
    }
    if plan.notification in breaks:
        faults.notification(reference_no, **breaks[plan.notification])


def play(rig: Rig, link: Instance, name: str, plan: Plan) -> Instance:
    """Run one payment through ``plan``'s faults, stop them, reconcile; the payment after."""
    reference_no = rig.ref(name)
    arm(rig, reference_no, plan)
    started = rig.start(name, Wallet.ASTRAPAY, plan.action, link_id=link.id)
    for _ in range(plan.forged_before):
        forge_return(rig, reference_no)
    rig.browse(started)
    if plan.action is CustomerAction.PAY:  # every attempt is recorded, dropped ones too
        rig.deliveries(reference_no, 2 if plan.notification == "duplicated" else 1)
    for _ in range(plan.forged_after):
        forge_return(rig, reference_no)
    rig.sim.faults.clear()
    return reconcile(rig, started.instance.id)


def reconcile(rig: Rig, payment_id: str) -> Instance:
    """The reconciler's passes, each as if its payments' deadlines had passed."""
    reconciler = Reconciler(rig.service)
    payment = rig.engine.get(payment_id)
    for _ in range(PASSES):
        if payment.deadline_at is None:  # final
            break
        reconciler.run_once(rig.engine.clock.now() + timedelta(hours=1))
        payment = rig.engine.get(payment_id)
    return payment


def as_nicepay_says(rig: Rig, status: str) -> set[str]:
    """The states the payment may be in when NICEPAY's inquiry says ``status``.

    The state its answer leads to from a status check, and where that state's own timer goes
    (``paid`` becomes ``customer_updated``).
    """
    flow = rig.engine.flow("astrapay_payment")
    event = event_for_status(Wallet.ASTRAPAY, status, current_state=CHECK)
    assert event is not None, f"NICEPAY's status {status!r} maps to nothing"
    (answered,) = flow.candidates(CHECK, event)
    states = {answered.dest}
    deadline = flow.state(answered.dest).deadline
    if deadline is not None:
        states |= {spec.dest for spec in flow.candidates(answered.dest, deadline.on_expiry)}
    return states


def test_astrapay_ends_as_nicepay_says_whatever_the_faults(db_url: str) -> None:
    config = sim_config(
        expiry=dict.fromkeys(("ovo", "dana", "linkaja", "shopeepay", "astrapay"), LONG),
        reorder_max_hold=0.3,
        timeout_hold=2.0,
    )
    with open_rig(
        db_url,
        config,
        api_timeout=httpx.Timeout(0.5),
        inquiry_retry=InquiryRetry(attempts=1, base_delay=0.0, max_delay=0.0),
    ) as rig:
        link = rig.link("acct")
        names = (f"f{n}" for n in itertools.count())
        examples = EXAMPLES[database(rig.engine).dialect]

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(plan=plans())
        # A forged return first: the genuine notification must still get through.
        @example(Plan(PAY, "on_time", False, 1, 0, ()))
        # No notification, and every inquiry the returns trigger fails: only a later check's
        # hints can settle it, and a forged one comes first.
        @example(Plan(PAY, "dropped", True, 1, 1, ("503", "503", "503")))
        # Declined: NICEPAY sends nothing, the return's inquiry times out.
        @example(Plan(DECLINE, "on_time", True, 0, 1, ("timeout",)))
        def ends_as_nicepay_says(plan: Plan) -> None:
            name = next(names)
            payment = play(rig, link, name, plan)
            at_nicepay = rig.sim.transaction(reference_no=rig.ref(name))
            assert payment.state in as_nicepay_says(rig, at_nicepay.status), (plan, payment)
            assert payment.tx_id == at_nicepay.tx_id, plan  # never a forged one

        ends_as_nicepay_says()
