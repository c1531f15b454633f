"""Every NICEPAY call is recorded as an intent before it is sent.

The intent (:mod:`adapters.reconcile.journal`) is committed first, then the request goes out,
then the answer's transition is committed, and only then is the intent finished. A process that
stops anywhere in between leaves the intent open, and :mod:`adapters.reconcile.recovery` repairs
its payment from an inquiry.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from adapters.errors import ProviderError
from adapters.nicepay.client import Call
from adapters.reconcile.journal import CallJournal, Hold
from fsm.errors import ConfigurationError
from fsm.model import Instance

INTENT_GRACE = timedelta(minutes=10)
"""How long a call may take, from its intent to the commit of its answer, before the reconciler
takes it for abandoned. It must exceed the slowest live call: three registration sends at the
client's timeout, the inquiry's retries, and the engine's retries, each of which may wait out
SQLite's 30 s busy timeout. A repair that came early could fail a registration that is about to
succeed, or let a second cancel through while the first is under way."""

CALL_LEASE = INTENT_GRACE
"""How long a call that moves money holds its instance (:class:`~adapters.reconcile.journal.Hold`):
as long as a call may take. A process that stops mid-call leaves a claim that runs out when its
intent becomes due for repair, so the repair waits no longer than it would have; a call that
outlasts it learns so when it finishes (:attr:`OpenCall.overtaken`)."""

MONEY_MOVING = frozenset({Call.CANCEL})
"""Calls whose lost answer leaves money in doubt: only an inquiry may close them, and only one
may be open per payment (a second cancel could refund twice)."""


def checked_lease(lease: timedelta) -> timedelta:
    """``lease``, as a call's hold on its instance may last.

    Raises:
        ConfigurationError: ``lease`` is not positive.
    """
    if lease <= timedelta(0):
        raise ConfigurationError(f"a call's lease must be positive, not {lease}")
    return lease


class OpenCall:
    """The intent of one call under way; the block marks when NICEPAY's answer has arrived."""

    def __init__(self, intent_id: int, keep_hold: Callable[[], bool] | None = None) -> None:
        self.intent_id = intent_id
        self._keep_hold = keep_hold
        self.answered = False
        self.refusal: str | None = None
        self.outcome: str | None = None
        """What the call closed its intent with, or would have; ``None`` while in doubt."""
        self.overtaken = False
        """Whether a repair closed the intent before the call was done with it."""

    def mark_answered(self) -> None:
        """NICEPAY accepted the call: whatever fails after this cannot blame the call itself."""
        self.answered = True

    def refuse(self, reason: str) -> None:
        """The call will not be sent after all: the block ends, and the intent closes as
        ``refused:<reason>``."""
        self.refusal = f"refused:{reason}"

    def keep_hold(self) -> bool:
        """Renew the call's hold right before it is sent; false when the hold is lost (a repair
        took the payment, or closed the intent): the call must then not be sent, and
        :meth:`give_up` says so. A call made without a hold may always go."""
        return self._keep_hold is None or self._keep_hold()

    def give_up(self, reason: str) -> None:
        """The call was never sent, for want of its hold: the intent closes as
        ``unsent:<reason>``, if a repair has not closed it already."""
        self.refusal = f"unsent:{reason}"

    @property
    def sent(self) -> bool:
        """Whether the block may have sent the call: it neither refused nor gave it up."""
        return self.refusal is None


@contextmanager
def recorded_call(
    calls: CallJournal,
    instance: Instance,
    call: Call,
    *,
    request: Mapping[str, Any],
    amount: str | None = None,
    tx_id: str | None = None,
    call_key: str | None = None,
    hold: Hold | None = None,
) -> Iterator[OpenCall]:
    """Record the intent of ``call``, run the block (the call and its transition), finish it.

    The block's normal end finishes the intent as ``answered``; NICEPAY's refusal of the call
    as ``refused:<code>``; an answer lost in transport as ``failed:<error>``. A cancel stays
    open instead, for the reconciler's inquiry, unless NICEPAY declined it by a documented code
    (:attr:`~adapters.errors.ProviderError.declined`): when its answer was lost, when the answer
    was no documented refusal, or when anything failed after NICEPAY accepted it
    (:meth:`OpenCall.mark_answered`). Any other exception
    leaves the intent open: what reached NICEPAY is unknown, so the reconciler finds out.

    A ``call_key`` makes the call once-only for the payment: a second call under the same key,
    from any replica, is refused before anything is sent. A block that decides not to send the
    call after all marks it (:meth:`OpenCall.refuse`), and the intent closes as
    ``refused:<reason>``.

    With ``hold``, the payment is claimed against the reconcilers from the intent's record to
    its finish, both in the intent's own transactions, or until the hold's lease runs out; the
    block renews it right before it sends (:meth:`OpenCall.keep_hold`), and sends nothing once
    it is lost. A repair may close the intent only after that; the call then finds its intent
    closed (:attr:`OpenCall.overtaken`), and its caller decides what its answer still means.

    Raises:
        CallKeyTaken: a call under ``call_key`` was recorded for the payment before; nothing
            was sent.
        CallInDoubt: a cancel for the payment is still open; nothing was sent.
        InstanceBusy: ``hold``, and a reconciler holds the payment; nothing was sent.
    """
    clock = calls.clock
    intent_id = calls.record(
        instance.id,
        call,
        at=clock.now(),
        reference_no=instance.reference_no,
        amount=amount if amount is not None else instance.amount,
        tx_id=tx_id if tx_id is not None else instance.tx_id,
        request=request,
        exclusive=call in MONEY_MOVING,
        call_key=call_key,
        hold=hold,
    )
    renew = None
    if hold is not None:
        renew = functools.partial(_renew, calls, intent_id, instance.id, hold)
    handle = OpenCall(intent_id, renew)
    try:
        yield handle
    except ProviderError as error:
        in_doubt = call in MONEY_MOVING and (handle.answered or not error.declined)
        if in_doubt:
            _leave_open(calls, instance.id, handle, hold)
        else:
            _finish(calls, instance.id, handle, _failure(error), hold)
        raise
    except BaseException:  # what reached NICEPAY is unknown: the reconciler finds out
        _leave_open(calls, instance.id, handle, hold)
        raise
    outcome = "answered" if handle.refusal is None else handle.refusal
    _finish(calls, instance.id, handle, outcome, hold)


def _renew(calls: CallJournal, intent_id: int, instance_id: str, hold: Hold) -> bool:
    return calls.renew(intent_id, instance_id, hold, at=calls.clock.now())


def _finish(
    calls: CallJournal, instance_id: str, handle: OpenCall, outcome: str, hold: Hold | None
) -> None:
    handle.outcome = outcome
    at = calls.clock.now()
    held = None if hold is None else (instance_id, hold)
    handle.overtaken = not calls.finish(handle.intent_id, outcome=outcome, at=at, held=held)


def _leave_open(calls: CallJournal, instance_id: str, handle: OpenCall, hold: Hold | None) -> None:
    """Leave the intent open for the reconciler, giving back the hold so that it may repair."""
    if hold is not None:
        at = calls.clock.now()
        handle.overtaken = not calls.release(handle.intent_id, instance_id, hold, at=at)


def _failure(error: ProviderError) -> str:
    kind = "failed" if error.retryable else "refused"
    return f"{kind}:{error.provider_code or type(error).__name__}"


__all__ = [
    "INTENT_GRACE",
    "MONEY_MOVING",
    "Call",
    "OpenCall",
    "checked_lease",
    "recorded_call",
]
