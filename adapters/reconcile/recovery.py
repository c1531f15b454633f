"""Repair what a stopped process left between a NICEPAY call and the commit of its answer.

Every call is recorded as an intent before it is sent (:mod:`adapters.reconcile.intents`). An intent
still open after :data:`INTENT_GRACE` belongs to a process that stopped (or an answer that was
lost), and its payment is repaired from NICEPAY's own account, never by sending a money-moving
call again:

- A payment that knows its tXid is asked about with an inquiry, and the answer applied as any
  status check's is: a registration whose answer was stored, a lost payment-links answer, an
  inquiry cut short, or a cancel whose void or refund was never stored all end in the state
  NICEPAY reports. A refund request's intent closes as ``repaired:refunded`` when the refunded
  total NICEPAY reports covers it, else ``repaired:not_refunded`` (its amount is free again),
  but only a grace after the cancel's last chance to go out (:attr:`CallIntent.last_sent_by`):
  before that the intent stays open, for NICEPAY may still be on its way to carry it out.
- A registration whose answer was lost has no tXid to ask about, and without one NICEPAY's
  transaction can never be paid: nobody was ever shown its payment step. The payment is failed
  (``fail_registration``) with the reason stored, instead of registering again for a customer
  who is gone; the intent keeps the ``referenceNo`` that may stand registered and unpaid there.

A cancel holds its payment while it is under way, so its intent is repaired only once the cancel
is done or its claim has run out. A cancel that outlasts its claim may still reach NICEPAY after
the repair's inquiry: if it leaves its intent open before the repair closes it, the repair leaves
it open too, for a pass whose inquiry comes after the cancel (:meth:`CallJournal.close_repaired`);
if it ends after the repair closed it, it keeps what it learnt (:func:`keep_late_answer`).
The repair waits for a cancel's hold no longer than :attr:`Reconciler.longest_hold` from its
record; a hold said to run past that is reported for a person, never closed on.

A refund request a repair left in doubt (:func:`reopen_in_doubt`) is opened again, and repaired
as any other, once NICEPAY's total may settle it. A refund request is judged only from its
repair's own inquiry answer, verified and stating ``cancelAmt`` exactly; without one it stays
open, reported every pass, until :attr:`Reconciler.longest_unheard` has passed since its record,
then closes in doubt for a person (:mod:`adapters.reconcile.cancel_repair`). A call that moves
money whose repair failed for good keeps its payment claimed for a while that grows with its age
(at most :data:`LONGEST_BACKOFF`): NICEPAY refusing its inquiry for good must not keep the newer
ones from their repair. A failure that may pass by itself does not back off.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from adapters.errors import ProviderError
from adapters.reconcile.cancel_repair import (
    SUSPECT_HOLD,
    Waits,
    closing_unheard,
    refund_closed,
    suspect_hold,
)
from adapters.reconcile.deadlines import (
    DEFAULT_LEASE,
    report_skipped,
    run_due,
    unfit,
)
from adapters.reconcile.intents import CALL_LEASE, INTENT_GRACE, MONEY_MOVING, Call
from adapters.reconcile.journal import CallIntent, CallJournal
from adapters.reconcile.lost_registration import fail_lost_registration
from adapters.reconcile.passes import ReconcilePass, Repair, count_pass
from adapters.reconcile.refund_repair import LEFT_OPEN, reopen_in_doubt
from adapters.reconcile.status import HeardAnswer, StatusChecks
from adapters.telemetry import ServiceTelemetry, default_telemetry
from fsm.definition import Actor
from fsm.errors import ConfigurationError, FsmError
from fsm.store.leases import claim_owner

logger = logging.getLogger(__name__)

LONGEST_HOLD = CALL_LEASE + INTENT_GRACE
"""How long a cancel may hold its payment from its intent's record, by default: its lease,
renewed right before it is sent, which is at most a call's time after the record."""
LONGEST_UNHEARD = timedelta(hours=6)
"""How long from its record a refund request's repair asks, by default, for a refunded total
NICEPAY never states before it closes the request in doubt for a person."""


@dataclass(frozen=True)
class Reconciler:
    """One reconciler: its name for claims, and how long it waits and holds.

    Any number may run against one database (one per replica): they claim what they work on.
    """

    service: StatusChecks
    owner: str = field(default_factory=claim_owner)
    grace: timedelta = INTENT_GRACE
    """How old an open intent must be to count as abandoned."""
    lease: timedelta = DEFAULT_LEASE
    limit: int = 100
    """Intents, and due instances, per pass."""
    longest_hold: timedelta = LONGEST_HOLD
    """The longest a cancel may hold its payment from its intent's record (its lease, renewed
    right before it is sent): the repair waits no longer for it, and reports a hold said to run
    past that (another replica's lease or clock) for a person instead."""
    longest_unheard: timedelta = LONGEST_UNHEARD
    """How long from its record a refund request's repair keeps asking NICEPAY for a refunded
    total it never states (or an inquiry it refuses for good) before it closes the request
    ``repaired:no_total``, its amount reserved, for a person to settle."""
    telemetry: ServiceTelemetry | None = None
    """Where each pass's outcomes are counted (by default the global OpenTelemetry providers)."""
    _failed_in_a_row: dict[int, int] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """Passing failures in a row of each intent's repair here (none once it succeeds)."""

    def __post_init__(self) -> None:
        # A grace of zero would "repair" calls other processes are still waiting on.
        times = (self.grace, self.lease, self.longest_hold, self.longest_unheard)
        if min(times) <= timedelta(0) or self.limit < 1:
            raise ConfigurationError(
                f"a reconciler needs a positive grace, lease, longest hold, longest unheard and "
                f"limit, not {self.grace}, {self.lease}, {self.longest_hold}, "
                f"{self.longest_unheard} and {self.limit}"
            )

    def run_once(self, now: datetime | None = None) -> ReconcilePass:
        """Repair abandoned calls, then act on passed deadlines.

        Repairs go first: a paid payment whose cancel is in doubt must learn of its void or
        refund before its order-confirmation timer can fire.
        """
        moment = now or self.service.engine.clock.now()
        repairs = self.repair_open_intents(moment)
        deadlines = run_due(
            self.service,
            now=moment,
            limit=self.limit,
            owner=self.owner,
            lease=self.lease,
            grace=self.grace,
        )
        done = ReconcilePass(repairs, deadlines)
        count_pass(self.telemetry or default_telemetry(), done)
        return done

    def repair_open_intents(self, now: datetime | None = None) -> list[Repair]:
        """Repair the payment of every intent open for longer than ``grace``, oldest first.

        Each payment is claimed while it is repaired; one another reconciler (or a cancel under
        way) holds is left for a later pass, and an intent another one closed since this pass
        listed it is skipped. A repair whose inquiry fails reports the error and keeps its intent
        open, unless NICEPAY refused the inquiry for good and the call moves no money (see
        :func:`_unrepaired`). An intent whose payment nobody can act on (its flow or state is
        unknown) is reported as skipped and stays open, its payment claimed until the lease runs
        out so that it takes no place in the passes in between; the intents after it are
        repaired in the same pass. A cancel whose repair failed keeps its payment claimed too,
        for longer the older it is (:meth:`_keep_claim`).

        Refund requests left in doubt that NICEPAY's total may settle now are opened again
        first (:func:`reopen_in_doubt`), and repaired with the rest; cancels holding their
        payment past :attr:`longest_hold` are reported last, for a person.
        """
        calls, leases = self.service.calls, self.service.leases
        moment = now or self.service.engine.clock.now()
        reopen_in_doubt(calls, limit=self.limit)
        repairs = []
        due = calls.still_open(
            recorded_before=moment - self.grace, unclaimed_at=moment, limit=self.limit
        )
        for intent in due:
            if not leases.claim(intent.instance_id, owner=self.owner, now=moment, lease=self.lease):
                continue
            kept = False
            try:
                current = _still_open(calls, intent)  # read again, now that it is claimed
                if current is not None:  # another replica may have repaired it meanwhile
                    repairs.append(self._repair(current, moment))
                    kept = self._keep_claim(current, repairs[-1], moment)
            finally:
                if not kept:
                    leases.release([intent.instance_id], owner=self.owner)
        return repairs + self._suspect_holds(moment)

    def _repair(self, intent: CallIntent, moment: datetime) -> Repair:
        waits = Waits(self.grace, self.longest_hold, self.longest_unheard)
        return _repair(self.service, intent, now=moment, waits=waits)

    def _keep_claim(self, intent: CallIntent, repair: Repair, moment: datetime) -> bool:
        """Whether the payment stays claimed after its repair, keeping it out of the next passes:
        for the lease when nobody can act on it, and for a time that grows with the intent's
        age when the repair of a call that moves money failed for good (NICEPAY refusing its
        inquiry, say), so that such intents do not take every pass's places. A failure that may
        pass by itself (an outage) is tried again at the next pass, so that an old lost refund
        does not stay in doubt for the backoff's hour after one passing error; the next ones in
        a row pause for a time that doubles (at most :data:`LONGEST_RETRY_PAUSE`), so that one
        lasting for good (a body that is never JSON) cannot take every pass either."""
        if repair.outcome in _KEEP_CLAIM:
            return True
        if not (repair.error and intent.call in MONEY_MOVING):
            self._failed_in_a_row.pop(intent.id, None)
            return False
        if repair.retryable:
            in_a_row = self._failed_in_a_row[intent.id] = (
                self._failed_in_a_row.get(intent.id, 0) + 1
            )
            if in_a_row == 1:
                return False
            pause = min(self.lease * 2 ** (in_a_row - 2), LONGEST_RETRY_PAUSE)
        else:
            pause = min(max(self.lease, (moment - intent.recorded_at) / 4), LONGEST_BACKOFF)
        leases = self.service.leases
        return leases.claim(intent.instance_id, owner=self.owner, now=moment, lease=pause)

    def _suspect_holds(self, moment: datetime) -> list[Repair]:
        """Report the cancels whose hold runs past :attr:`longest_hold` and a grace after it:
        their payments stay claimed, so no repair reaches them, and nobody may refund them
        meanwhile; a person looks at them instead of a silent wait. Nothing is changed."""
        recorded_before = moment - self.longest_hold - self.grace
        held = self.service.calls.still_open(
            recorded_before=recorded_before, held_after=moment, limit=self.limit
        )
        return [suspect_hold(self.service, intent) for intent in held]


_KEEP_CLAIM = frozenset({"skipped"})
"""Repair outcomes whose payment stays claimed for the lease: the next passes would only find
the same. (A refund waited for is asked about again: its wait ends by itself, and its claim
would refuse the payment's next refund.)"""
LONGEST_BACKOFF = timedelta(hours=1)
"""The longest a reconciler leaves a call that moves money, whose repair failed, before it
tries again."""
LONGEST_RETRY_PAUSE = timedelta(minutes=15)
"""The longest a repair pauses after passing failures in a row (an outage that lasts)."""


def _still_open(calls: CallJournal, intent: CallIntent) -> CallIntent | None:
    """``intent`` as it stands now, if it is still open."""
    return next(
        (i for i in calls.still_open(instance_id=intent.instance_id) if i.id == intent.id), None
    )


def _repair(service: StatusChecks, intent: CallIntent, *, now: datetime, waits: Waits) -> Repair:
    engine = service.engine
    before = engine.get(intent.instance_id)
    problem = unfit(engine, before)
    if problem is not None:  # the intent stays open for when the row is put right
        error = report_skipped(before, problem)
        return Repair(before.id, intent.call, before.state, before.state, "skipped", error)
    heard: list[HeardAnswer] = []
    try:
        if intent.call == Call.REGISTRATION and not before.tx_id:
            outcome, repaired = fail_lost_registration(service, intent, before)
        elif before.tx_id or intent.tx_id:
            repaired = service.check_status(
                before.id, actor=Actor.TIMER, tx_id_hint=intent.tx_id, heard=heard
            )
            outcome = "inquired"
        else:
            outcome, repaired = "nothing to ask: no tXid", before
    except ProviderError as error:
        if intent.call == Call.CANCEL and intent.call_key:
            why = f"the inquiry failed ({type(error).__name__})"
            closed = closing_unheard(service, intent, now=now, waits=waits, why=why)
            if closed is not None:
                return _close(service, intent, closed, before.state, before.state)
        return _unrepaired(service, intent, before.state, error, gives_up=not error.retryable)
    except FsmError as error:  # e.g. contention outlasting the retries: the next pass tries again
        return _unrepaired(service, intent, before.state, error, gives_up=False)
    after = repaired.state
    closed = f"repaired:{after}"
    if intent.call == Call.CANCEL and intent.call_key:  # a refund request: did it take effect?
        total = heard[-1].exact_total if heard else None  # this repair's own answer, and only it
        states = (before.state, after)
        judged = refund_closed(service, intent, total, states, now=now, waits=waits)
        if isinstance(judged, Repair):
            return judged
        closed = judged
    return _close(service, intent, closed, before.state, after, outcome)


def _close(
    service: StatusChecks,
    intent: CallIntent,
    closed: str,
    before: str,
    after: str,
    outcome: str | None = None,
) -> Repair:
    """Close the repaired intent as ``closed``, unless its call or another repair came first."""
    if not service.calls.close_repaired(intent, outcome=closed, at=service.engine.clock.now()):
        return _overtaken(intent, before, after)
    logger.info(
        "abandoned call repaired",
        extra={
            "instance": intent.instance_id,
            "call": intent.call,
            "before": before,
            "after": after,
        },
    )
    return Repair(intent.instance_id, intent.call, before, after, outcome or closed)


def _overtaken(intent: CallIntent, before: str, after: str) -> Repair:
    """A repair whose intent its own call left open (or another closed) while the repair ran:
    the repair's inquiry may predate the call, so the intent waits for the next pass."""
    logger.warning(
        "repair overtaken by its call",
        extra={"instance": intent.instance_id, "call": intent.call, "intent": intent.id},
    )
    return Repair(intent.instance_id, intent.call, before, after, LEFT_OPEN)


def _unrepaired(
    service: StatusChecks, intent: CallIntent, before: str, error: FsmError, *, gives_up: bool
) -> Repair:
    """Report a repair that failed; the intent stays open unless asking again cannot help.

    NICEPAY refusing the inquiry itself (a bad token, an unknown transaction) will refuse it next
    time too: such an intent is closed with the refusal, so its payment's deadlines run again.
    A cancel never is: only an answered inquiry may say whether money moved.
    """
    engine = service.engine
    closes = gives_up and intent.call not in MONEY_MOVING
    if closes:
        service.calls.finish(
            intent.id, outcome=f"unrepaired:{type(error).__name__}"[:32], at=engine.clock.now()
        )
    logger.warning(
        "repair failed",
        extra={
            "instance": intent.instance_id,
            "call": intent.call,
            "error": type(error).__name__,
            "intent": "closed" if closes else "open",
        },
    )
    after = engine.get(intent.instance_id).state
    outcome = "unrepaired" if closes else "open"
    return Repair(intent.instance_id, intent.call, before, after, outcome, str(error), not gives_up)


__all__ = [
    "INTENT_GRACE",
    "LONGEST_BACKOFF",
    "LONGEST_HOLD",
    "LONGEST_RETRY_PAUSE",
    "LONGEST_UNHEARD",
    "SUSPECT_HOLD",
    "ReconcilePass",
    "Reconciler",
    "Repair",
]
