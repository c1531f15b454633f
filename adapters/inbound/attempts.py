"""Every inbound request, refused or accepted, as one journal row, and the refusal it is answered.

Each request is appended to the inbound journal (:mod:`adapters.inbound.journal`): when it
arrived, the endpoint, the outcome and status code, the typed error and its reason, the matched
instance if any, the parameters compactly with the token redacted (an oversized or stalled body:
its size only), and the client's address.
A refused request that names a payment is also noted on the payment, once per throttle slot. The
merchant key and tokens are blanked wherever they appear in what is stored, logged or answered
(:mod:`~adapters.inbound.redact`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from enum import StrEnum
from typing import Any, NamedTuple

from pydantic import SecretStr

from adapters.errors import (
    BodyTimeout,
    BodyTooLarge,
    NotificationError,
    NotificationSignatureError,
    SourceNotAllowed,
    UnknownTransaction,
)
from adapters.inbound.asgi import Reply
from adapters.inbound.journal import InboundJournal
from adapters.inbound.keys import callback_key
from adapters.inbound.parsing import InboundRequest, parsed_or_empty
from adapters.inbound.redact import compact, redact, redact_all, secrets_of
from fsm.definition import Actor
from fsm.engine import Engine
from fsm.errors import RejectReason
from fsm.model import Instance
from fsm.store.protocol import Along

logger = logging.getLogger(__name__)

NOTIFICATION = "notification"
"""``inbound_attempt.endpoint`` of ``dbProcessUrl`` notifications."""
CALLBACK = "callback"
"""``inbound_attempt.endpoint`` of ``callBackUrl`` browser returns."""


class Outcome(StrEnum):
    """How an inbound request ended, as ``inbound_attempt.outcome`` records it."""

    ACCEPTED = "accepted"
    """Verified (a notification) or matched (a browser return), and acted on."""
    DUPLICATE = "duplicate"
    """A redelivery, or a browser return in a slot already asked about: nothing new."""
    NOT_APPLIED = "not_applied"
    """Matched, but the flow does not take its event now (e.g. the payment has settled)."""
    REFUSED = "refused"
    """Answered with a 4xx and a typed error; nothing changed."""


_STATUS_OF = {
    BodyTooLarge: 413,
    BodyTimeout: 408,
    UnknownTransaction: 404,
    SourceNotAllowed: 403,
    NotificationSignatureError: 401,
}
_ACTOR_OF = {NOTIFICATION: Actor.PROVIDER_NOTIFICATION, CALLBACK: Actor.BROWSER_CALLBACK}
_REASONS = {
    Outcome.ACCEPTED: "acted on; a status check decides",
    Outcome.DUPLICATE: "a redelivery, or a return already asked about: nothing new",
    Outcome.NOT_APPLIED: "the flow does not take the event now; nothing applied",
}
_MESSAGE_LIMIT = 300


class Entry(NamedTuple):
    """A request's journal entry: what writes it, and what its log record says."""

    write: Along
    endpoint: str
    status: int
    outcome: Outcome
    instance: Instance | None
    error: str | None


class Attempts:
    """Journals inbound requests for one engine, and answers the refused ones."""

    def __init__(
        self,
        engine: Engine,
        journal: InboundJournal,
        merchant_key: SecretStr,
        kept: Collection[str],
    ) -> None:
        """Journal into ``journal`` and note refusals through ``engine``, blanking
        ``merchant_key`` and keeping ``kept`` first."""
        self._engine = engine
        self._journal = journal
        self._merchant_key = merchant_key
        self.kept = kept

    def secrets(self, params: Mapping[str, Any] | None = None) -> list[str]:
        """What to blank: the merchant key, and the token ``params`` carry."""
        return secrets_of(self._merchant_key.get_secret_value(), params)

    def scrub(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` with the merchant key and tokens blanked wherever they appear."""
        return redact_all(params, self.secrets(params))

    def refuse(
        self,
        error: NotificationError,
        instance: Instance | None,
        request: InboundRequest,
        params: Mapping[str, str] | None,
        endpoint: str,
    ) -> Reply:
        """Journal a refused request, note it on its payment, and answer its typed error."""
        status = next((code for kind, code in _STATUS_OF.items() if isinstance(error, kind)), 400)
        event = "receive_notification" if endpoint == NOTIFICATION else "browser_return"
        if params is None:  # refused before parsing: the parameters, if they parse, are stored
            params = parsed_or_empty(request)
        # Blanked before it is cut, so that no cut leaves part of a secret behind.
        message = redact(str(error), self.secrets(params))[:_MESSAGE_LIMIT]
        logger.warning(
            "inbound request refused",
            extra={
                "instance": instance.id if instance else None,
                **payment_fields(instance),
                "endpoint": endpoint,
                "event": event,
                "reason": message,
            },
        )
        stored = compact(self.scrub(params), self.kept)
        if instance is not None:
            self._note_refusal(instance, endpoint, event, message, stored)
        name = type(error).__name__
        args = (endpoint, request, status, Outcome.REFUSED, instance, stored, name, message)
        self.record(self.entry(*args))
        return Reply(status, {"error": name, "message": message})

    def _note_refusal(
        self,
        instance: Instance,
        endpoint: str,
        event: str,
        message: str,
        stored: Mapping[str, Any],
    ) -> None:
        """Note a refused request on its payment, once per throttle slot and endpoint.

        Anyone can send requests naming a payment; each one is in the journal, and the
        payment's own record shows that they came without growing with every one of them.
        """
        engine = self._engine
        key = f"refused:{endpoint}:{callback_key(engine.clock.now())}"
        if engine.has_rejection(instance.id, key):
            return
        engine.record_refused(
            instance.id,
            event,
            actor=_ACTOR_OF[endpoint],
            idempotency_key=key,
            reason=RejectReason.UNVERIFIED,
            detail=message,
            payload=stored,
        )

    def entry(
        self,
        endpoint: str,
        request: InboundRequest,
        status: int,
        outcome: Outcome,
        instance: Instance | None,
        parameters: Mapping[str, Any],
        error: str | None = None,
        reason: str = "",
        also: Along | None = None,
    ) -> Entry:
        """The request's row in ``inbound_attempt``; ``parameters`` are already scrubbed.

        Its writer appends the row, and ``also`` what the request led to, in the caller's
        transaction (:meth:`InboundJournal.writer`): :meth:`record`'s own, or the step the
        request fires (then :meth:`answered` logs it once committed).
        """
        write = self._journal.writer(
            received_at=self._engine.clock.now(),
            endpoint=endpoint,
            outcome=outcome,
            status_code=status,
            error=error,
            reason=reason or _REASONS.get(outcome, ""),
            instance_id=instance.id if instance else None,
            parameters=parameters,
            body_bytes=len(request.body),
            client_ip=request.client_ip,
            also=also,
        )
        return Entry(write, endpoint, status, outcome, instance, error)

    def record(self, entry: Entry) -> None:
        """Journal ``entry`` in a transaction of its own, and log it."""
        self._journal.commit(entry.write)
        self.answered(entry)

    def answered(self, entry: Entry) -> None:
        """Log a journalled request's answer."""
        logger.info(
            "inbound request answered",
            extra={
                **payment_fields(entry.instance),
                "endpoint": entry.endpoint,
                "status": entry.status,
                "outcome": str(entry.outcome),
                "reason": entry.error,
            },
        )


def payment_fields(instance: Instance | None) -> dict[str, str | None]:
    """What a log record says of the payment a request concerns: ids and wallet, no amounts."""
    if instance is None:
        return {"flow": None, "payment_id": None, "reference": None, "wallet": None}
    return {
        "flow": instance.flow,
        "payment_id": instance.id,
        "reference": instance.reference_no,
        "wallet": instance.wallet,
    }


__all__ = ["CALLBACK", "NOTIFICATION", "Attempts", "Entry", "Outcome", "payment_fields"]
