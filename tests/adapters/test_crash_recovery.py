"""Crash safety: a process killed at any point of a NICEPAY call is repaired by the reconciler.

Every call (registration of an OVO and a DANA payment, ShopeePay's payment links, an inquiry
after the customer paid, a full and a partial cancel of a paid payment) is made by a process
that SIGKILLs itself at each point of the call's life (see ``crash_worker``): once its intent
is committed, once NICEPAY's answer has arrived, once the answer's transition is applied but not
committed, once that is committed but the intent not finished. The simulator plays NICEPAY in
this process and outlives every kill; NICEPAY's notifications reach a merchant endpoint that is
down, so only the reconciler moves the payments afterwards.

The reconciler then runs, as a later pass would, until it has nothing left to repair. Every
payment must end in the state NICEPAY reports for its transaction (a registration whose answer
was lost ends in ``registration_failed`` with the reason stored), with every intent finished, no
money moved twice (one transaction per order, at most one cancel each, nothing the reconciler
sent but inquiries), nothing refused but repeated answers, and a log that replays. While a
cancel is in doubt, a second cancel is refused before anything is sent.
"""

from __future__ import annotations

import multiprocessing
import secrets
import signal
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from adapters.errors import CallInDoubt, RefundError
from adapters.nicepay.client import INQUIRY_PATH
from adapters.reconcile.intents import Call
from adapters.reconcile.journal import CallIntent, CallJournal
from adapters.reconcile.recovery import ReconcilePass, Reconciler
from adapters.refunds import RefundStatus
from adapters.service import PaymentService
from adapters.simulator import NicepaySimulator, serve_app
from adapters.simulator.flow import NicepayEvent
from adapters.simulator.rig import demo_order
from adapters.wallets.status_codes import event_for_status
from fsm.clock import ManualClock
from fsm.engine import Engine
from fsm.errors import RejectReason
from fsm.flows import FLOWS, PaymentEvent, PaymentState, Wallet
from fsm.model import Instance
from fsm.store.sql import SqlStore
from tests.adapters.crash_worker import (
    CANCEL_LEASE,
    CHILD_LIMIT,
    Crash,
    Ending,
    KillPoint,
    Operation,
    Setting,
    crash_request_id,
    run_crashes,
    service_on,
)
from tests.adapters.e2e_rig import assert_replays, assert_settled_by_inquiry, sim_config
from tests.conftest import database

S, E = PaymentState, PaymentEvent
POINTS = tuple(KillPoint)
GRACE = timedelta(seconds=30)
"""The reconcilers' grace: short, since every process that made a call here is dead (the
default covers the slowest live call, and would let a paid order's 10-minute timer run too)."""
RECONCILE_AFTER = max(GRACE, CANCEL_LEASE) + timedelta(seconds=30)
"""How much later the reconciler runs: past the grace of every intent the crashes left open,
and past the lease of every cancel's claim on its payment."""
MAX_PASSES = 3
RUNNER_LIMIT = len(POINTS) * CHILD_LIMIT + 15.0
"""Seconds the dying processes may take in all before the test gives up on them."""
NICEPAY_EXPIRY = timedelta(minutes=30)
"""Long enough that no transaction expires at NICEPAY while a test runs."""
PARTIAL = "50000"

STATES_AFTER: Mapping[str, frozenset[str]] = {
    E.CONFIRM_PAYMENT: frozenset({S.PAID, S.ORDER_CONFIRMED}),
    E.REPORT_PENDING: frozenset({S.PAYMENT_PENDING}),
    E.VOID_PAYMENT: frozenset({S.VOIDED}),
    E.REFUND_PAYMENT: frozenset({S.REFUNDED}),
    E.FAIL_PAYMENT: frozenset({S.FAILED}),
    E.EXPIRE_PAYMENT: frozenset({S.EXPIRED}),
}
"""The states a payment may stand in once an inquiry answer's event is applied."""


@dataclass(frozen=True)
class CallCase:
    """One call made by a dying process, and the state each kill point must end in."""

    operation: Operation
    call: Call
    wallet: Wallet
    ends_in: Mapping[KillPoint, str]
    cancel_amount: str | None = None


def _ends(state: str, **at: str) -> dict[KillPoint, str]:
    """``state`` after a kill at any point, except at the points named in ``at``."""
    return {point: at.get(point, state) for point in POINTS}


CASES: Mapping[str, CallCase] = {
    # Killed before its tXid was stored, a registration is abandoned; after, it is inquired.
    "register-ovo": CallCase(
        Operation.START,
        Call.REGISTRATION,
        Wallet.OVO,
        _ends(S.REGISTRATION_FAILED, answer_committed=S.PAYMENT_PENDING),
    ),
    "register-dana": CallCase(
        Operation.START,
        Call.REGISTRATION,
        Wallet.DANA,
        _ends(S.REGISTRATION_FAILED, answer_committed=S.PAYMENT_PENDING),
    ),
    "links-shopeepay": CallCase(
        Operation.START, Call.PAYMENT_LINKS, Wallet.SHOPEEPAY, _ends(S.PAYMENT_PENDING)
    ),
    "inquiry-paid": CallCase(Operation.CHECK_STATUS, Call.INQUIRY, Wallet.DANA, _ends(S.PAID)),
    # A cancel killed before it was sent cancelled nothing: the payment stays paid. ShopeePay
    # has no documented cancel window, so the test does not depend on the hour (DANA refuses
    # cancels from 00:00 to 01:00 WIB).
    "cancel-full": CallCase(
        Operation.CANCEL, Call.CANCEL, Wallet.SHOPEEPAY, _ends(S.VOIDED, intent_recorded=S.PAID)
    ),
    "cancel-partial": CallCase(
        Operation.CANCEL,
        Call.CANCEL,
        Wallet.SHOPEEPAY,
        _ends(S.REFUNDED, intent_recorded=S.PAID),
        cancel_amount=PARTIAL,
    ),
}


# --- the rig: NICEPAY simulated here, a merchant whose notification endpoint is down ----------


async def merchant_endpoint_down(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    """Refuse every notification, so that nothing but the reconciler moves a payment."""
    await send({"type": "http.response.start", "status": 503, "headers": []})
    await send({"type": "http.response.body", "body": b""})


@dataclass
class CrashRig:
    """The shared database, the simulator, and the surviving server's own service."""

    engine: Engine
    sim: NicepaySimulator
    service: PaymentService
    """The survivor: sets payments up, then reconciles what the dead processes left."""
    setting: Setting
    sent: list[str]
    """Paths of every request the survivor sent to NICEPAY."""
    run: str

    def crash(self, name: str, case: CallCase, point: KillPoint) -> Crash:
        """The crash of ``case`` at ``point``, on a payment set up as the call needs."""
        index = POINTS.index(point)
        payment_id = f"crash-{self.run}-{name}-{index}"
        reference_no = f"CR-{self.run}-{name}-{index}"
        if case.operation is not Operation.START:
            self.paid_at_nicepay(payment_id, reference_no, case.wallet)
        if case.operation is Operation.CANCEL:
            assert self.service.check_status(payment_id).state == S.PAID
        return Crash(
            payment_id,
            case.operation,
            case.call,
            point,
            wallet=case.wallet,
            reference_no=reference_no,
            cancel_amount=case.cancel_amount,
        )

    def paid_at_nicepay(self, payment_id: str, reference_no: str, wallet: Wallet) -> None:
        """Start a payment; its customer pays at NICEPAY, and nobody here knows yet."""
        started = self.service.start_payment(
            demo_order(reference_no, wallet), payment_id=payment_id
        )
        assert self.sim.approve(started.instance.tx_id or "")


@contextmanager
def open_crash_rig(db_url: str) -> Iterator[CrashRig]:
    """A fresh schema at ``db_url``, the simulator, and the survivor's service, for a block."""
    store = SqlStore(db_url)
    store.create_schema()
    engine = Engine(store, flows=FLOWS)
    config = sim_config(expiry=dict.fromkeys(Wallet, NICEPAY_EXPIRY))
    sent: list[str] = []
    try:
        with (
            NicepaySimulator(config).serve() as sim,
            serve_app(merchant_endpoint_down) as merchant_url,
            httpx.Client(
                timeout=httpx.Timeout(5.0),
                trust_env=False,
                event_hooks={"request": [lambda request: sent.append(request.url.path)]},
            ) as http,
        ):
            setting = Setting(
                db_url=db_url,
                nicepay_url=sim.nicepay_url,
                imid=config.imid,
                merchant_key=config.merchant_key.get_secret_value(),
                notification_url=f"{merchant_url}/nicepay/notification",
                callback_url=f"{merchant_url}/nicepay/callback",
            )
            service = service_on(setting, engine, store, http)
            yield CrashRig(engine, sim, service, setting, sent, secrets.token_hex(3))
    finally:
        store.dispose()


# --- dying, and reconciling -------------------------------------------------------------------


def die_in_other_processes(setting: Setting, crashes: list[Crash]) -> list[Ending]:
    """Run the crashes in a spawned worker (one forked child each); how each child ended."""
    context = multiprocessing.get_context("spawn")
    receiving, sending = context.Pipe(duplex=False)
    worker = context.Process(
        target=run_crashes, args=(setting, crashes, sending), name="crash-worker"
    )
    worker.start()
    sending.close()
    try:
        if not receiving.poll(RUNNER_LIMIT):
            pytest.fail(f"the crash worker sent nothing in {RUNNER_LIMIT} s: a hung child")
        try:
            endings = receiving.recv()
        except EOFError:
            pytest.fail(f"the crash worker died without a report (exit code {worker.exitcode})")
        worker.join(timeout=10)
    finally:
        if worker.is_alive():
            worker.kill()
            worker.join(timeout=5)
        receiving.close()
    assert not isinstance(endings, str), endings
    return list(endings)


def assert_died_at_their_points(endings: list[Ending]) -> None:
    """Every child was killed by SIGKILL at its point, and by nothing else."""
    for ending in endings:
        expected = (signal.SIGKILL, f"died at {ending.crash.point}")
        assert (ending.signal, ending.said) == expected, ending


def reconcile_until_quiet(rig: CrashRig) -> list[ReconcilePass]:
    """Reconciler passes, as after the grace period, until one finds nothing to repair."""
    reconciler = Reconciler(rig.service, grace=GRACE)
    later = rig.engine.clock.now() + RECONCILE_AFTER
    passes = []
    for _ in range(MAX_PASSES):
        done = reconciler.run_once(now=later)
        assert not done.failed, done
        passes.append(done)
        if not done.repairs:
            return passes
    pytest.fail(f"still repairing after {MAX_PASSES} passes: {passes}")


def open_intents(store: SqlStore, later: datetime) -> list[CallIntent]:
    """Every intent nobody finished."""
    calls = CallJournal(store, clock=ManualClock(later))
    return calls.still_open(recorded_before=later, limit=1000)


# --- what NICEPAY holds -----------------------------------------------------------------------


def transactions_of(sim: NicepaySimulator, reference_no: str) -> list[Instance]:
    """NICEPAY's transactions for the order: under its referenceNo, or a renamed one."""

    def ours(tx: Instance) -> bool:  # the simulator's ledger keeps each transaction's reference
        kept = sim.transaction(tx.id).reference_no
        return kept == reference_no or kept.startswith(reference_no + "-")

    return [tx for tx in database(sim.engine).list_instances() if ours(tx)]


def moves_of_money(sim: NicepaySimulator, tx_id: str) -> tuple[int, int]:
    """How often NICEPAY took the transaction's money, and how often it gave some back."""
    events = [record.event for record in sim.engine.history(tx_id)]
    return events.count(NicepayEvent.APPROVE), sum(
        events.count(reversal) for reversal in (NicepayEvent.CANCEL, NicepayEvent.REFUND)
    )


def states_nicepay_reports(sim: NicepaySimulator, payment: Instance) -> frozenset[str]:
    """The states the payment may stand in, given what NICEPAY reports for it.

    Without a tXid the payment can never be paid (nobody was shown its payment step), so it is
    abandoned as a failed registration whatever NICEPAY holds under its referenceNo.
    """
    if payment.tx_id is None:
        return frozenset({S.REGISTRATION_FAILED})
    status = sim.transaction(payment.tx_id).status
    event = event_for_status(payment.wallet or "", status, current_state=payment.state)
    assert event is not None, (payment.id, status)
    return STATES_AFTER[event]


# --- the checks -------------------------------------------------------------------------------


def assert_money_moved_once(rig: CrashRig, crash: Crash) -> None:
    """One transaction per order at most; paid at most once; cancelled at most once, and only
    when the dead process's cancel reached NICEPAY."""
    found = transactions_of(rig.sim, crash.reference_no or "")
    registered = not (crash.call is Call.REGISTRATION and crash.point is KillPoint.INTENT_RECORDED)
    assert len(found) == int(registered), (crash, found)
    for tx in found:
        paid, reversed_ = moves_of_money(rig.sim, tx.id)
        assert paid == int(crash.operation is not Operation.START), (crash, tx)
        reached = crash.call is Call.CANCEL and crash.point is not KillPoint.INTENT_RECORDED
        assert reversed_ == int(reached), (crash, tx)
        cancelled = (crash.cancel_amount or tx.amount) if reached else "0"
        assert rig.sim.transaction(tx.id).cancel_amt == cancelled, (crash, tx)


def assert_lost_registration_abandoned(rig: CrashRig, payment: Instance) -> None:
    """A registration whose answer was lost is failed by the reconciler, with why."""
    last = rig.engine.history(payment.id)[-1]
    assert (last.event, last.dest) == (E.FAIL_REGISTRATION, S.REGISTRATION_FAILED)
    assert last.payload["error"] == "AnswerLost"
    assert last.payload["referenceNo"] == payment.reference_no
    for tx in transactions_of(rig.sim, payment.reference_no or ""):
        assert rig.sim.transaction(tx.id).paid_at is None  # registered there, payable by nobody


def assert_only_repeats_refused(rig: CrashRig, payment: Instance) -> None:
    """The only refused events are inquiry answers applied once already."""
    for rejected in rig.engine.rejections(payment.id):
        assert rejected.reason is RejectReason.DUPLICATE, rejected
        assert rejected.idempotency_key.startswith("inquiry:"), rejected


def assert_repaired(rig: CrashRig, crash: Crash, ends_in: str, left_open: set[int]) -> None:
    """Everything one crashed payment must be once the reconciler is done."""
    payment = rig.engine.get(crash.payment_id)
    history = [(r.event, r.dest, str(r.actor)) for r in rig.engine.history(payment.id)]
    assert payment.state == ends_in, (crash, history)
    assert payment.state in states_nicepay_reports(rig.sim, payment), (crash, history)
    if payment.tx_id is None:
        assert_lost_registration_abandoned(rig, payment)
    assert_money_moved_once(rig, crash)
    intents = rig.service.calls.of_instance(payment.id)
    assert all(intent.finished_at is not None for intent in intents), intents
    for intent in intents:
        if intent.id in left_open:
            assert (intent.outcome or "").startswith("repaired:"), intent
    assert_only_repeats_refused(rig, payment)
    assert_replays(rig.engine, payment)
    assert_settled_by_inquiry(rig.engine, payment.id)


def assert_crash_left_call_open(crash: Crash, left_open: list[CallIntent]) -> None:
    """The dead process left its call's intent open: at every point, the intent is finished
    only after the answer's transition is committed."""
    calls = {intent.call for intent in left_open if intent.instance_id == crash.payment_id}
    assert crash.call in calls, (crash, calls)


def assert_second_cancel_refused(rig: CrashRig, crash: Crash) -> None:
    """While the dead process's cancel is in doubt, its request asked again is answered from
    its intent, and another request is refused; neither sends or changes anything."""
    before = (len(rig.sent), rig.engine.get(crash.payment_id))
    again = rig.service.cancel(
        crash.payment_id, request_id=crash_request_id(crash), amount=crash.cancel_amount
    )
    assert again.status in {RefundStatus.PENDING, RefundStatus.IN_DOUBT}
    with pytest.raises((CallInDoubt, RefundError)):  # RefundError: voided already
        rig.service.cancel(crash.payment_id, request_id="another", amount=crash.cancel_amount)
    assert (len(rig.sent), rig.engine.get(crash.payment_id)) == before


# --- the test ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_a_process_killed_at_each_point_of_a_call_is_repaired(db_url: str, name: str) -> None:
    case = CASES[name]
    with open_crash_rig(db_url) as rig:
        crashes = [rig.crash(name, case, point) for point in POINTS]
        assert_died_at_their_points(die_in_other_processes(rig.setting, crashes))

        store = database(rig.engine)
        far = rig.engine.clock.now() + timedelta(days=1)
        left_open = open_intents(store, far)
        for crash in crashes:
            assert_crash_left_call_open(crash, left_open)
            if crash.call is Call.CANCEL:
                assert_second_cancel_refused(rig, crash)

        rig.sent.clear()
        reconcile_until_quiet(rig)
        assert open_intents(store, far) == []
        assert rig.sent, "the reconciler asked NICEPAY nothing"
        assert all(path.endswith(INQUIRY_PATH) for path in rig.sent), rig.sent
        for crash in crashes:
            ends_in = case.ends_in[crash.point]
            assert_repaired(rig, crash, ends_in, {intent.id for intent in left_open})
