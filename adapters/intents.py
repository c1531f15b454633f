"""Every NICEPAY call is recorded as an intent before it is sent (see :mod:`fsm.intents`).

The intent is committed first, then the request goes out, then the answer's transition is
committed, and only then is the intent finished. A process that stops anywhere in between
leaves the intent open, and :mod:`adapters.recovery` repairs its payment from an inquiry.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

from fsm.engine import Engine
from fsm.errors import FsmError, ProviderError
from fsm.model import Instance


class Call(StrEnum):
    """The NICEPAY calls a server makes."""

    REGISTRATION = "registration"
    PAYMENT_LINKS = "payment_links"
    """ShopeePay's payment step asked for its app and web links as JSON."""
    INQUIRY = "inquiry"
    CANCEL = "cancel"


class CallInDoubt(FsmError):
    """An earlier call of this kind for the payment has no stored answer; sending it again could
    move money twice. The reconciler settles it by an inquiry once the grace period has passed:
    until then the first call may still be under way at NICEPAY."""

    def __init__(self, instance_id: str, call: Call) -> None:
        super().__init__(
            f"the last {call} for {instance_id!r} has no stored answer; `ewallet-fsm "
            "reconcile` settles it by an inquiry once the grace period has passed"
        )
        self.instance_id = instance_id
        self.call = call


def refuse_if_in_doubt(engine: Engine, instance_id: str, call: Call) -> None:
    """Raise :class:`CallInDoubt` while an intent of ``call`` for the instance is still open."""
    if any(i.call == call and i.finished_at is None for i in engine.store.intents(instance_id)):
        raise CallInDoubt(instance_id, call)


_OPEN_WHEN_ANSWER_LOST = frozenset({Call.CANCEL})
"""Calls whose lost answer (timeout, 5xx) leaves money in doubt: only an inquiry may close them."""


@contextmanager
def recorded_call(
    engine: Engine,
    instance: Instance,
    call: Call,
    *,
    request: Mapping[str, Any],
    amount: str | None = None,
    tx_id: str | None = None,
) -> Iterator[int]:
    """Record the intent of ``call``, run the block (the call and its transition), finish it.

    The block's normal end finishes the intent as ``answered``; NICEPAY's refusal as
    ``refused:<code>``; an answer lost in transport as ``failed:<error>``, except for a
    cancel, which stays open for the reconciler's inquiry. Any other exception leaves the
    intent open: what reached NICEPAY is unknown, so the reconciler finds out.

    Yields:
        The intent's id.
    """
    store, clock = engine.store, engine.clock
    intent_id = store.record_intent(
        instance.id,
        call,
        at=clock.now(),
        reference_no=instance.reference_no,
        amount=amount if amount is not None else instance.amount,
        tx_id=tx_id if tx_id is not None else instance.tx_id,
        request=request,
    )
    try:
        yield intent_id
    except ProviderError as error:
        if not (error.retryable and call in _OPEN_WHEN_ANSWER_LOST):
            store.finish_intent(intent_id, outcome=_failure(error), at=clock.now())
        raise
    store.finish_intent(intent_id, outcome="answered", at=clock.now())


def _failure(error: ProviderError) -> str:
    kind = "failed" if error.retryable else "refused"
    return f"{kind}:{error.provider_code or type(error).__name__}"


__all__ = ["Call", "CallInDoubt", "recorded_call", "refuse_if_in_doubt"]
