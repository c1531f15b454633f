"""One framework-agnostic handler for NICEPAY's notifications and the customer's browser returns.

A notification is parsed, matched to its payment and verified (:mod:`adapters.inbound.matching`).
Only then does the payment's wallet adapter say what it means
(:meth:`~adapters.wallets.base.FlowAdapter.on_notification`), and the handler records it as that
event; for a payment, a status check decides what it meant, since the token does not cover
``status``. A browser return is unauthenticated: its adapter names the event it is recorded as
(:meth:`~adapters.wallets.base.FlowAdapter.on_return`), and a status check follows, nothing
more. The handler dispatches through the wallet registry and never on a flow's name.

The handler never calls NICEPAY: it verifies, records and answers. A status check is asked for
as work in the database (:mod:`adapters.reconcile.work`), and a worker runs it
(:class:`~adapters.reconcile.worker.StatusWorker`), so a request is answered whatever NICEPAY is
doing. A request whose step is applied is journalled, and its check asked for, in the step's own
transaction (writes riding along with it, :meth:`fsm.engine.Engine.fire`): the step is never
stored without them, so a process stopping at any moment leaves either all three, or nothing
and an unanswered sender who sends again. A repeated or refused step is journalled in a
transaction of its own. While a payment's check waits, further requests for it add no work.

Duplicates are absorbed by keys built only from what a token verified or what the server knows,
and still answered with success, so added or varied parameters buy nothing. A payment's browser
returns cost one status check per throttle slot at most, from any number of replicas (the
inquiry's intent is keyed on the slot). A notification the flow no longer takes costs one at
most, and none for a settled payment unless it claims a reversal.

Every request, refused or accepted, is journalled (:mod:`adapters.inbound.attempts`). A database
fault is answered 503 with ``Retry-After`` and a short body, never the driver's message: NICEPAY
sends the notification again.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from adapters.errors import BodyTimeout, BodyTooLarge, NotificationError
from adapters.inbound.asgi import Reply
from adapters.inbound.attempts import CALLBACK, NOTIFICATION, Attempts, Outcome
from adapters.inbound.keys import callback_key
from adapters.inbound.matching import (
    answering_adapter,
    check_reference,
    check_source,
    find_instance,
    require_ids,
    verify_notification,
)
from adapters.inbound.parsing import (
    InboundRequest,
    parse_text,
    raw_record,
    refuse_token_in_query,
)
from adapters.inbound.payments import Payments
from adapters.inbound.redact import DOCUMENTED_FIELDS, compact, fit, redact
from adapters.inbound.return_page import ReturnPage
from adapters.reconcile.hints import is_tx_id, recorded_hints
from adapters.reconcile.work import CheckRequest
from adapters.telemetry import ServiceTelemetry, current_trace_carrier, default_telemetry
from adapters.wallets.answers import BrowserReturn, Notified
from adapters.wallets.base import FlowAdapter
from fsm.definition import Actor
from fsm.errors import ConcurrentTransition, StorageError, StorageUnavailable
from fsm.model import Instance, TransitionResult
from fsm.store.protocol import Along

logger = logging.getLogger(__name__)

OK = Reply(200, {"resultCd": "0000", "resultMsg": "SUCCESS"})
RETRY_AFTER = 30
"""Seconds a sender is asked to wait (``Retry-After``) when the database failed."""


class _Step(NamedTuple):
    """The step a request fires, as :meth:`Payments.fire` takes it after the payment's id."""

    event: str
    actor: Actor
    key: str
    payload: Mapping[str, Any]


class NotificationHandler:
    """Answers ``dbProcessUrl`` notifications and ``callBackUrl`` browser returns."""

    def __init__(
        self,
        service: Payments,
        *,
        allowed_sources: Sequence[str] | None = None,
        return_url: str | None = None,
        telemetry: ServiceTelemetry | None = None,
    ) -> None:
        """Handle requests for ``service``.

        Args:
            service: the payment service whose payments the requests concern.
            allowed_sources: networks notifications may come from (e.g. NICEPAY's published
                ranges); ``None`` turns the check off, as for the loopback simulator.
            return_url: where a browser coming back from the wallet is sent (``303``, with the
                order's ``referenceNo`` and its ``outcome``); ``None`` answers a status page
                (:mod:`adapters.inbound.return_page`).
            telemetry: where each request's span and a notification's lag go
                (:mod:`adapters.telemetry`; by default the global OpenTelemetry providers).

        Raises:
            ConfigurationError: ``return_url`` is not an absolute http(s) URL.
        """
        self._service = service
        self._telemetry = telemetry or default_telemetry()
        self._page = ReturnPage(return_url)
        self._sources = (
            None
            if allowed_sources is None
            else [ipaddress.ip_network(net, strict=False) for net in allowed_sources]
        )
        kept = DOCUMENTED_FIELDS | set(service.mandate_fields)
        self._attempts = Attempts(
            service.engine, service.inbound, service.client.credentials.merchant_key, kept
        )

    def handle_notification(self, request: InboundRequest) -> Reply:
        """Verify and record one notification, and ask for its status check; never raises for
        what it is sent.

        A database fault is answered 503 with ``Retry-After``, so that NICEPAY sends it again.
        """
        return self._guarded(NOTIFICATION, self._notification, request)

    def handle_callback(self, request: InboundRequest) -> Reply:
        """Record the browser's return and ask for a status check; never raises for what it is
        sent.

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
        with self._telemetry.inbound_span(endpoint, request.headers) as span:
            reply = self._answered(endpoint, handle, request)
            span.set_attribute("http.response.status_code", reply.status)
            return reply

    def _answered(
        self, endpoint: str, handle: Callable[[InboundRequest], Reply], request: InboundRequest
    ) -> Reply:
        try:
            return handle(request)
        except (StorageError, ConcurrentTransition) as error:  # the store's, or a lost race's
            reason = redact(f"{endpoint}: {error}", self._attempts.secrets())
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
            endpoint,
            lambda unread: self._attempts.refuse(error, None, unread, {}, endpoint),
            request,
        )

    def _notification(self, request: InboundRequest) -> Reply:
        engine = self._service.engine
        instance: Instance | None = None
        params: dict[str, str] | None = None
        try:
            check_source(request, self._sources)
            refuse_token_in_query(request)
            params = parse_text(request)
            require_ids(params, engine)
            found = find_instance(params, engine)
            adapter = answering_adapter(found, params)  # else refused as unknown, noted nowhere
            instance = found
            check_reference(instance, params)
            verify_notification(adapter, instance, params, self._service.client.credentials)
        except NotificationError as error:
            return self._attempts.refuse(error, instance, request, params, NOTIFICATION)
        self._telemetry.notified(params, engine.clock.now(), instance.wallet)
        stored = compact(self._attempts.scrub(params), self._attempts.kept)
        self._accept_notification(adapter, instance, params, request, stored)
        return OK

    def _callback(self, request: InboundRequest) -> Reply:
        instance: Instance | None = None
        params: dict[str, str] | None = None
        try:
            params = parse_text(request)
            found = find_instance(params, self._service.engine)
            adapter = answering_adapter(found, params)
            instance = found
            check_reference(instance, params)
            returned = adapter.on_return(instance)
        except NotificationError as error:
            return self._attempts.refuse(error, instance, request, params, CALLBACK)
        # Keyed on the server's clock, never on what the return claims: nothing in it is
        # verified, so junk or varied parameters must not buy another write or inquiry.
        service, scrubbed = self._service, self._attempts.scrub(params)
        key = callback_key(service.engine.clock.now())
        stored = compact(scrubbed, self._attempts.kept)
        if returned.checks_status:
            hint = scrubbed.get("tXid")
            current = self._returned(instance, returned, key, stored, hint, request)
        else:
            service.record_hint(instance, returned.event, key, stored)  # moves nothing
            self._journal(CALLBACK, request, Outcome.ACCEPTED, instance, stored)
            current = instance
        return self._page.reply(service.engine.flow_of(current), current)

    def _returned(
        self,
        instance: Instance,
        returned: BrowserReturn,
        key: str,
        stored: Mapping[str, Any],
        hint: str | None,
        request: InboundRequest,
    ) -> Instance:
        """Fire and journal a payment's browser return, once per throttle slot; the payment as
        it left it."""
        engine, event = self._service.engine, returned.event
        skipped: Outcome | None = None
        if not engine.flow_of(instance).candidates(instance.state, event):
            # the flow takes no return here: only the journal keeps it
            skipped = Outcome.NOT_APPLIED
        elif self._service.calls.by_key(instance.id, key) is not None:
            skipped = Outcome.DUPLICATE  # this slot's check was asked already
        if skipped is not None:
            self._keep_hint(instance, returned, stored, hint)
            self._journal(CALLBACK, request, skipped, instance, stored)
            return instance
        # The tXid it names is only a hint: the inquiry's answer must confirm it.
        check = CheckRequest(instance.id, tx_id_hint=hint, call_key=key)
        step = _Step(event, Actor.BROWSER_CALLBACK, key, stored)
        result = self._fire_journalled(CALLBACK, request, instance, stored, step, check)
        if result is None:
            # Refused where the state as read allowed it: the payment moved on meanwhile, and
            # where to is only in the store.
            self._journal(CALLBACK, request, Outcome.NOT_APPLIED, instance, stored)
            return engine.get(instance.id)
        if result.duplicate:
            self._journal(CALLBACK, request, Outcome.DUPLICATE, instance, stored)
        return result.instance

    def _fire_journalled(
        self,
        endpoint: str,
        request: InboundRequest,
        instance: Instance,
        stored: Mapping[str, Any],
        step: _Step,
        check: CheckRequest | None,
    ) -> TransitionResult | None:
        """Fire a request's step with its journal entry and the status check it calls for
        riding along: one transaction when the step is applied.

        A repeated or refused step writes neither: the caller journals it as what it was.
        """
        also = self._asking(check)
        entry = self._attempts.entry(
            endpoint, request, OK.status, Outcome.ACCEPTED, instance, stored, also=also
        )
        result = self._service.fire(instance.id, *step, along=entry.write)
        if result is not None and not result.duplicate:
            self._attempts.answered(entry)
        return result

    def _journal(
        self,
        endpoint: str,
        request: InboundRequest,
        outcome: Outcome,
        instance: Instance,
        stored: Mapping[str, Any],
        check: CheckRequest | None = None,
    ) -> None:
        """Journal a request answered 200 in a transaction of its own, with the status check
        it calls for, if any."""
        also = self._asking(check)
        entry = self._attempts.entry(
            endpoint, request, OK.status, outcome, instance, stored, also=also
        )
        self._attempts.record(entry)

    def _keep_hint(
        self,
        instance: Instance,
        returned: BrowserReturn,
        stored: Mapping[str, Any],
        tx_id_hint: str | None,
    ) -> None:
        """Keep a tXid a return names, once, though the return itself moves nothing.

        The payment may learn its tXid only from a return; a forged one in the same throttle
        slot must not make the genuine one's tXid vanish. Each distinct well-formed tXid is
        recorded once, and a later status check asks about it (see :mod:`adapters.reconcile.hints`).
        """
        if not returned.keeps_tx_id_hint or instance.tx_id or not is_tx_id(tx_id_hint):
            return
        if tx_id_hint in recorded_hints(self._service.engine, instance.id):
            return
        self._service.record_hint(instance, returned.event, f"hint:{tx_id_hint}", stored)

    def _accept_notification(
        self,
        adapter: FlowAdapter,
        instance: Instance,
        params: Mapping[str, str],
        request: InboundRequest,
        stored: Mapping[str, Any],
    ) -> None:
        """Record a verified notification as its event, and journal it with the status check
        it calls for."""
        imid = self._service.client.credentials.imid
        mandate_fields = self._service.mandate_fields
        notified = adapter.on_notification(
            instance, params, imid=imid, mandate_fields=mandate_fields
        )
        payload = self._payload(notified, params, request)
        step = _Step(notified.event, Actor.PROVIDER_NOTIFICATION, notified.key, payload)
        check = CheckRequest(instance.id) if notified.inquire else None
        result = self._fire_journalled(NOTIFICATION, request, instance, stored, step, check)
        if result is not None and not result.duplicate:
            return
        if result is not None:  # a redelivery: its check was asked for with its step
            outcome, check = Outcome.DUPLICATE, None
        else:
            outcome = Outcome.NOT_APPLIED
            check = self._refused_check(instance.id, notified) if notified.inquire else None
        self._journal(NOTIFICATION, request, outcome, instance, stored, check)

    def _payload(
        self, notified: Notified, params: Mapping[str, str], request: InboundRequest
    ) -> dict[str, Any]:
        """What a notification's step stores: its parameters and raw form, tokens blanked, and
        the fields its event binds; only the documented ones when it is too large."""
        payload = {**params, "raw": raw_record(request, params)}
        scrub = self._attempts.scrub
        return {**fit(scrub(payload), self._attempts.kept), **scrub(notified.binds)}

    def _refused_check(self, instance_id: str, notified: Notified) -> CheckRequest | None:
        """The check a notification the flow refused (checking already, or settled) calls for,
        once.

        A settled payment is asked only about a claimed reversal: the inquiry may reveal a void
        or a refund, where a replayed deposit can reveal nothing new.
        """
        engine = self._service.engine
        current = engine.get(instance_id)
        settled = engine.flow_of(current).state(current.state).kind.settled
        if settled and not notified.claims_reversal:
            return None
        if self._service.calls.by_key(instance_id, notified.key) is not None:
            return None  # asked under its key already
        return CheckRequest(instance_id, call_key=notified.key)

    def _asking(self, check: CheckRequest | None) -> Along | None:
        """What asks a worker for ``check`` in the transaction that journals its request."""
        if check is None:
            return None
        # Inside the request's span: the check's own span, when a worker runs it, links here.
        linked = check._replace(trace_parent=current_trace_carrier())
        return self._service.status_work.writer(linked, self._service.engine.clock.now())


__all__ = ["OK", "RETRY_AFTER", "NotificationHandler", "Payments"]
