"""One framework-agnostic handler for NICEPAY's notifications and the customer's browser returns.

A notification is parsed, matched to its payment by ``tXid`` (or ``referenceNo`` while no tXid is
stored), checked against the stored reference and amount, and its token verified in constant
time. Only then is it recorded as the flow's notification event, and an inquiry decides what it
meant: the token does not cover ``status``, so nothing settles on a notification's word. A browser
return is unauthenticated: it is recorded and triggers a status check, nothing more.

Duplicates are absorbed by keys built only from what a token verified or what the server knows
(:mod:`adapters.inbound.keys`), and still answered with success, so added or varied parameters
buy nothing. A payment's browser returns cost one status check per throttle slot at most, from
any number of replicas (the inquiry's intent is keyed on the slot). A notification the flow no
longer takes costs one at most, and none for a settled payment unless it claims a reversal.

Every request, refused or accepted, is also appended to the store's ``inbound_attempt`` table
(:meth:`~fsm.store.sql.SqlStore.record_inbound`): when it arrived, the endpoint, the outcome and
status code, the typed error and its reason, the matched instance if any, the parameters compactly
with the token redacted (an oversized or stalled body: its size only), and the client's address.
The merchant key and tokens are blanked wherever they appear in what is stored, logged or
answered (:mod:`~adapters.inbound.redact`). A database fault is answered 503 with ``Retry-After``
and a short body, never the driver's message: NICEPAY sends the notification again.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from typing import Any

from adapters.inbound.asgi import Reply
from adapters.inbound.keys import (
    REVERSAL,
    callback_key,
    link_notification_key,
    notification_key,
    notified_status,
)
from adapters.inbound.parsing import (
    BodyTimeout,
    BodyTooLarge,
    InboundRequest,
    MissingFields,
    SourceNotAllowed,
    UnknownNotificationStatus,
    UnknownTransaction,
    parse_text,
    parsed_or_empty,
    raw_record,
    refuse_token_in_query,
    verify_link_token,
    verify_notification_token,
)
from adapters.inbound.redact import (
    DOCUMENTED_FIELDS,
    compact,
    fit,
    redact,
    redact_all,
    secrets_of,
    shown,
)
from adapters.reconcile.hints import is_tx_id, recorded_hints
from adapters.service import PaymentService
from adapters.wallets.astrapay import AstrapayLinkAdapter, find_mandate
from fsm.definition.flow import Actor
from fsm.errors import (
    CallKeyTaken,
    ConcurrentTransition,
    NotificationError,
    NotificationPayloadError,
    NotificationSignatureError,
    ProviderError,
    RejectReason,
    StorageError,
    StorageUnavailable,
)
from fsm.flows import AstrapayPaymentEvent, PaymentEvent
from fsm.model import Instance

logger = logging.getLogger(__name__)

OK = Reply(200, {"resultCd": "0000", "resultMsg": "SUCCESS"})
RETRY_AFTER = 30
"""Seconds a sender is asked to wait (``Retry-After``) when the database failed."""

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
_LINK_STATUSES = frozenset({"0", "1"})
_MESSAGE_LIMIT = 300


class NotificationHandler:
    """Answers ``dbProcessUrl`` notifications and ``callBackUrl`` browser returns."""

    def __init__(
        self, service: PaymentService, *, allowed_sources: Sequence[str] | None = None
    ) -> None:
        """Handle requests for ``service``.

        Args:
            service: the payment service whose payments the requests concern.
            allowed_sources: networks notifications may come from (e.g. NICEPAY's published
                ranges); ``None`` turns the check off, as for the loopback simulator.
        """
        self._service = service
        self._sources = (
            None
            if allowed_sources is None
            else [ipaddress.ip_network(net, strict=False) for net in allowed_sources]
        )
        self._kept = DOCUMENTED_FIELDS | set(service.mandate_fields)

    def handle_notification(self, request: InboundRequest) -> Reply:
        """Verify, record and confirm one notification; never raises for what it is sent.

        A database fault is answered 503 with ``Retry-After``, so that NICEPAY sends it again.
        """
        return self._guarded(NOTIFICATION, self._notification, request)

    def handle_callback(self, request: InboundRequest) -> Reply:
        """Record the browser's return and run a status check; never raises for what it is sent.

        A database fault is answered 503 with ``Retry-After``.
        """
        return self._guarded(CALLBACK, self._callback, request)

    def handle_oversized(self, endpoint: str, request: InboundRequest, limit: int) -> Reply:
        """Record and refuse (413) a body the ASGI app would not read past ``limit`` bytes."""
        return self._refuse_unread(BodyTooLarge(f"body exceeds {limit} bytes"), endpoint, request)

    def handle_stalled(self, endpoint: str, request: InboundRequest, seconds: float) -> Reply:
        """Record and refuse (408) a body that did not arrive whole within ``seconds``."""
        error = BodyTimeout(f"body not received whole within {seconds:g} s")
        return self._refuse_unread(error, endpoint, request)

    def _guarded(
        self, endpoint: str, handle: Callable[[InboundRequest], Reply], request: InboundRequest
    ) -> Reply:
        try:
            return handle(request)
        except (StorageError, ConcurrentTransition) as error:  # the store's, or a lost race's
            reason = redact(f"{endpoint}: {error}", self._secrets())
            logger.warning(
                "inbound request not handled: the database failed",
                extra={"endpoint": endpoint, "error": type(error).__name__, "reason": reason},
            )
            body = {
                "error": StorageUnavailable.__name__,
                "message": "the payment database is unavailable; send the request again later",
            }
            return Reply(503, body, headers=(("retry-after", str(RETRY_AFTER)),))

    def _refuse_unread(
        self, error: NotificationError, endpoint: str, request: InboundRequest
    ) -> Reply:
        endpoint = CALLBACK if endpoint == CALLBACK else NOTIFICATION
        return self._guarded(
            endpoint, lambda unread: self._refuse(error, None, unread, {}, endpoint), request
        )

    def _notification(self, request: InboundRequest) -> Reply:
        instance: Instance | None = None
        params: dict[str, str] | None = None
        try:
            self._check_source(request)
            refuse_token_in_query(request)
            params = parse_text(request)
            self._require_ids(params)
            instance = self._find(params)
            _check_reference(instance, params)
            self._verify(instance, params)
        except NotificationError as error:
            return self._refuse(error, instance, request, params, NOTIFICATION)
        outcome = self._accept_notification(instance, params, request)
        stored = compact(self._scrub(params), self._kept)
        self._record(NOTIFICATION, request, OK.status, outcome, instance, stored)
        return OK

    def _callback(self, request: InboundRequest) -> Reply:
        instance: Instance | None = None
        params: dict[str, str] | None = None
        try:
            params = parse_text(request)
            instance = self._find(params)
            _check_reference(instance, params)
        except NotificationError as error:
            return self._refuse(error, instance, request, params, CALLBACK)
        # Keyed on the server's clock, never on what the return claims: nothing in it is
        # verified, so junk or varied parameters must not buy another write or inquiry.
        service, scrubbed = self._service, self._scrub(params)
        key = callback_key(service.engine.clock.now())
        stored = compact(scrubbed, self._kept)
        outcome = Outcome.ACCEPTED
        if instance.flow == AstrapayLinkAdapter.flow:
            AstrapayLinkAdapter.returned(service, instance, stored, key)
        else:
            event = (
                AstrapayPaymentEvent.RECEIVE_CALLBACK
                if instance.flow == "astrapay_payment"
                else PaymentEvent.RETURN_FROM_PARTNER
            )
            outcome = self._returned(instance, event, key, stored, scrubbed.get("tXid"))
        current = service.engine.get(instance.id)
        self._record(CALLBACK, request, 200, outcome, instance, stored)
        return Reply(200, {"id": current.id, "state": current.state})

    def _returned(
        self,
        instance: Instance,
        event: str,
        key: str,
        stored: Mapping[str, Any],
        tx_id_hint: str | None,
    ) -> Outcome:
        """Fire a payment's browser return and check its status, once per throttle slot."""
        engine = self._service.engine
        if not engine.flow(instance.flow).candidates(instance.state, event):
            self._keep_hint(instance, event, stored, tx_id_hint)
            return Outcome.NOT_APPLIED  # the flow takes no return here: only the journal keeps it
        if engine.store.intent_by_key(instance.id, key) is not None:
            self._keep_hint(instance, event, stored, tx_id_hint)
            return Outcome.DUPLICATE  # this slot's status check was asked already
        result = self._service.fire(instance.id, event, Actor.BROWSER_CALLBACK, key, stored)
        if result is None:
            return Outcome.NOT_APPLIED
        if result.duplicate:
            return Outcome.DUPLICATE
        # The tXid it names is only a hint: the inquiry's answer must confirm it.
        self._confirm(instance.id, tx_id_hint=tx_id_hint, call_key=key)
        return Outcome.ACCEPTED

    def _keep_hint(
        self, instance: Instance, event: str, stored: Mapping[str, Any], tx_id_hint: str | None
    ) -> None:
        """Keep a tXid an AstraPay return names, once, though the return itself moves nothing.

        The payment may learn its tXid only from a return; a forged one in the same throttle
        slot must not make the genuine one's tXid vanish. Each distinct well-formed tXid is
        recorded once, and a later status check asks about it (see :mod:`adapters.reconcile.hints`).
        """
        if instance.flow != "astrapay_payment" or instance.tx_id or not is_tx_id(tx_id_hint):
            return
        if tx_id_hint in recorded_hints(self._service.engine, instance.id):
            return
        self._service.record_hint(instance, event, f"hint:{tx_id_hint}", stored)

    def _accept_notification(
        self, instance: Instance, params: Mapping[str, str], request: InboundRequest
    ) -> Outcome:
        imid = self._service.client.credentials.imid
        if instance.flow == AstrapayLinkAdapter.flow:
            mandate = find_mandate(params, self._service.mandate_fields) is not None
            key = link_notification_key(imid, params, with_mandate=mandate)
            stored = fit(self._scrub(params), self._kept)
            AstrapayLinkAdapter.notified(self._service, instance, stored, key)
            return Outcome.ACCEPTED
        key = notification_key(imid, params["tXid"], instance.amount or "", params)
        payload = {**params, "tx_id": params["tXid"], "raw": raw_record(request, params)}
        event = PaymentEvent.RECEIVE_NOTIFICATION  # same name in both payment flows
        result = self._service.fire(
            instance.id, event, Actor.NICEPAY_NOTIFICATION, key, fit(self._scrub(payload))
        )
        if result is not None and result.duplicate:
            return Outcome.DUPLICATE  # a redelivery: its inquiry already ran
        if result is not None:
            self._confirm(instance.id)
            return Outcome.ACCEPTED
        self._confirm_refused(instance.id, key, params)
        return Outcome.NOT_APPLIED

    def _confirm_refused(self, instance_id: str, key: str, params: Mapping[str, str]) -> None:
        """Ask about a notification the flow refused (checking already, or settled), once.

        A settled payment is asked only about a claimed reversal: the inquiry may reveal a void
        or a refund, where a replayed deposit can reveal nothing new.
        """
        engine = self._service.engine
        current = engine.get(instance_id)
        settled = engine.flow(current.flow).state(current.state).kind.settled
        if settled and notified_status(params) != REVERSAL:
            return
        if engine.store.intent_by_key(instance_id, key) is None:  # spares the check's step
            self._confirm(instance_id, call_key=key)

    def _confirm(
        self, instance_id: str, *, tx_id_hint: str | None = None, call_key: str | None = None
    ) -> None:
        try:
            self._service.check_status(instance_id, tx_id_hint=tx_id_hint, call_key=call_key)
        except CallKeyTaken:  # another request, on any replica, asked under this key already
            logger.info(
                "status check already asked", extra={"instance": instance_id, "key": call_key}
            )
        except ProviderError as error:  # the status check's deadline retries it
            logger.warning(
                "status check after notification failed",
                extra={"instance": instance_id, "reason": type(error).__name__},
            )

    def _check_source(self, request: InboundRequest) -> None:
        if self._sources is None:
            return
        try:
            address = ipaddress.ip_address(request.client_ip or "")
        except ValueError:
            raise SourceNotAllowed("notification source address unknown") from None
        if not any(address in network for network in self._sources):
            raise SourceNotAllowed(f"notifications are not accepted from {address}")

    def _require_ids(self, params: Mapping[str, str]) -> None:
        """A notification names its ``referenceNo`` and, unless it is for a link, its ``tXid``."""
        missing = [name for name in ("tXid", "referenceNo") if not params.get(name)]
        if "referenceNo" in missing:
            raise MissingFields(missing)
        if missing:  # only an account link's notification has no tXid
            links = self._service.engine.store.find(reference_no=params["referenceNo"])
            if not any(link.flow == AstrapayLinkAdapter.flow for link in links):
                raise MissingFields(missing)

    def _find(self, params: Mapping[str, str]) -> Instance:
        store = self._service.engine.store
        tx_id, reference_no = params.get("tXid"), params.get("referenceNo")
        if not tx_id and not reference_no:
            raise MissingFields(("tXid", "referenceNo"), alternatives=True)
        found = store.find(tx_id=tx_id) if tx_id else []
        if not found and reference_no:
            found = _by_reference(store.find(reference_no=reference_no), tx_id)
        if len(found) != 1:
            raise UnknownTransaction(
                f"no single payment for tXid {shown(tx_id)} / referenceNo {shown(reference_no)}"
            )
        return found[0]

    def _verify(self, instance: Instance, params: Mapping[str, str]) -> None:
        credentials = self._service.client.credentials
        if instance.flow == AstrapayLinkAdapter.flow:
            verify_link_token(params, imid=credentials.imid, merchant_key=credentials.merchant_key)
            status = params.get("status")
            if status is not None and status not in _LINK_STATUSES:
                raise UnknownNotificationStatus(
                    f"link notification status {shown(status)} is neither 0 (linked) nor 1 (failed)"
                )
            return
        if "tXid" not in params:
            raise MissingFields(["tXid"])
        if instance.tx_id is None:
            _check_bindable_tx_id(params["tXid"], instance, credentials.imid)
        verify_notification_token(
            params,
            imid=credentials.imid,
            stored_amount=instance.amount or "",
            merchant_key=credentials.merchant_key,
        )

    def _refuse(
        self,
        error: NotificationError,
        instance: Instance | None,
        request: InboundRequest,
        params: Mapping[str, str] | None,
        endpoint: str,
    ) -> Reply:
        status = next((code for kind, code in _STATUS_OF.items() if isinstance(error, kind)), 400)
        event = "receive_notification" if endpoint == NOTIFICATION else "browser_return"
        if params is None:  # refused before parsing: the parameters, if they parse, are stored
            params = parsed_or_empty(request)
        # Blanked before it is cut, so that no cut leaves part of a secret behind.
        message = redact(str(error), self._secrets(params))[:_MESSAGE_LIMIT]
        logger.warning(
            "inbound request refused",
            extra={
                "instance": instance.id if instance else None,
                "event": event,
                "reason": message,
            },
        )
        stored = compact(self._scrub(params), self._kept)
        if instance is not None:
            self._note_refusal(instance, endpoint, event, message, stored)
        name = type(error).__name__
        self._record(endpoint, request, status, Outcome.REFUSED, instance, stored, name, message)
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
        engine = self._service.engine
        key = f"refused:{endpoint}:{callback_key(engine.clock.now())}"
        if engine.store.has_rejection(instance.id, key):
            return
        engine.record_refused(
            instance.id,
            event,
            actor=Actor.NICEPAY_NOTIFICATION
            if endpoint == NOTIFICATION
            else Actor.BROWSER_CALLBACK,
            idempotency_key=key,
            reason=RejectReason.UNVERIFIED,
            detail=message,
            payload=stored,
        )

    def _record(
        self,
        endpoint: str,
        request: InboundRequest,
        status: int,
        outcome: Outcome,
        instance: Instance | None,
        parameters: Mapping[str, Any],
        error: str | None = None,
        reason: str = "",
    ) -> None:
        """Append the request to ``inbound_attempt``; ``parameters`` are already scrubbed."""
        engine = self._service.engine
        engine.store.record_inbound(
            received_at=engine.clock.now(),
            endpoint=endpoint,
            outcome=outcome,
            status_code=status,
            error=error,
            reason=reason or _REASONS.get(outcome, ""),
            instance_id=instance.id if instance else None,
            parameters=parameters,
            body_bytes=len(request.body),
            client_ip=request.client_ip,
        )

    def _secrets(self, params: Mapping[str, Any] | None = None) -> list[str]:
        key = self._service.client.credentials.merchant_key.get_secret_value()
        return secrets_of(key, params)

    def _scrub(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` with the merchant key and tokens blanked wherever they appear."""
        return redact_all(params, self._secrets(params))


_ACTOR_OF = {NOTIFICATION: Actor.NICEPAY_NOTIFICATION, CALLBACK: Actor.BROWSER_CALLBACK}

_REASONS = {
    Outcome.ACCEPTED: "acted on; a status check decides",
    Outcome.DUPLICATE: "a redelivery, or a return already asked about: nothing new",
    Outcome.NOT_APPLIED: "the flow does not take the event now; nothing applied",
}


def _by_reference(instances: Sequence[Instance], tx_id: str | None) -> list[Instance]:
    """Of the instances with a request's referenceNo, the ones it may be about.

    An instance bound to another tXid is not. The store keeps one live (not final) instance per
    flow and reference, and only a payment's request names a tXid, so the live one answers it;
    ended ones are matched only when none is live (a late notification, recorded there).
    """
    unbound = [instance for instance in instances if instance.tx_id in (None, tx_id)]
    live = [instance for instance in unbound if instance.deadline_at is not None]
    if len(live) > 1:  # a link and a payment under one reference
        live = [i for i in live if (i.flow == AstrapayLinkAdapter.flow) != bool(tx_id)]
    return live or unbound


TX_ID_LENGTH = 30
"""NICEPAY's tXid: iMid (10), payMethod (2), WIB date and time (14), a counter (4) (§5)."""


def _check_bindable_tx_id(tx_id: str, instance: Instance, imid: str) -> None:
    """Refuse a tXid a notification could not have been given by NICEPAY, before it binds.

    T3 signs ``iMid + tXid + amt``, and the browser's linkInitiate form carries T5, which signs
    ``iMid + referenceNo + amt``: a "notification" whose tXid is a reference would verify with
    the customer's own form token. NICEPAY's tXids start with the merchant's iMid and have a
    fixed length, which a reference does not share unless the merchant makes it so.
    """
    if tx_id == instance.reference_no or len(tx_id) != TX_ID_LENGTH or not tx_id.startswith(imid):
        raise NotificationPayloadError(f"tXid {shown(tx_id)} is not one NICEPAY issues")


def _check_reference(instance: Instance, params: Mapping[str, str]) -> None:
    reference_no = params.get("referenceNo")
    if reference_no and instance.reference_no != reference_no:
        raise NotificationPayloadError("referenceNo does not match the payment's")
