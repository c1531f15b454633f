"""One framework-agnostic handler for NICEPAY's notifications and the customer's browser returns.

A notification is parsed, matched to its payment by ``tXid`` (or ``referenceNo`` while no tXid is
stored), checked against the stored reference and amount, and its token verified in constant
time. Only then is it recorded as the flow's notification event, and an inquiry decides what it
meant: the token does not cover ``status``, so nothing settles on a notification's word. A browser
return is unauthenticated: it is recorded and triggers a status check, nothing more. Duplicates
are absorbed by keys derived from the parameters and still answered with success.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
from collections.abc import Mapping, Sequence

from adapters.asgi import Reply
from adapters.astrapay import AstrapayLinkAdapter
from adapters.inbound import (
    BodyTooLarge,
    InboundRequest,
    parse_params,
    require,
    verify_link_token,
    verify_notification_token,
)
from adapters.service import PaymentService
from fsm import REDACTED
from fsm.definition import Actor
from fsm.errors import (
    NotificationError,
    NotificationPayloadError,
    NotificationSignatureError,
    ProviderError,
    RejectReason,
)
from fsm.flows import AstrapayPaymentEvent, PaymentEvent
from fsm.model import Instance

logger = logging.getLogger(__name__)

OK = Reply(200, {"resultCd": "0000", "resultMsg": "SUCCESS"})


class UnknownTransaction(NotificationPayloadError):
    """No stored payment or link matches the request's ``tXid`` or ``referenceNo``."""


class SourceNotAllowed(NotificationError):
    """The notification came from an address outside the configured allowlist."""


_STATUS_OF = {
    BodyTooLarge: 413,
    UnknownTransaction: 404,
    SourceNotAllowed: 403,
    NotificationSignatureError: 401,
}


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

    def handle_notification(self, request: InboundRequest) -> Reply:
        """Verify, record and confirm one notification; never raises."""
        instance: Instance | None = None
        try:
            self._check_source(request)
            params = parse_params(request)
            require(params, "referenceNo")
            instance = self._find(params)
            _check_reference(instance, params)
            self._verify(instance, params)
        except NotificationError as error:
            return self._refuse(error, instance, request, "receive_notification")
        self._accept_notification(instance, params, request)
        return OK

    def handle_callback(self, request: InboundRequest) -> Reply:
        """Record the browser's return and run a status check; never raises."""
        instance: Instance | None = None
        try:
            params = parse_params(request)
            instance = self._find(params)
            _check_reference(instance, params)
        except NotificationError as error:
            return self._refuse(error, instance, request, "browser_return")
        # Keyed on what the return claims, not on every parameter: junk parameters added to a
        # forged return must not buy another write or another inquiry.
        claim = f"{params.get('tXid') or params.get('referenceNo')}:{params.get('resultCd', '')}"
        key = f"callback:{claim}"
        service = self._service
        if instance.flow == AstrapayLinkAdapter.flow:
            AstrapayLinkAdapter.returned(service, instance, params, key)
        else:
            event = (
                AstrapayPaymentEvent.RECEIVE_CALLBACK
                if instance.flow == "astrapay_payment"
                else PaymentEvent.RETURN_FROM_PARTNER
            )
            result = service.fire(instance.id, event, Actor.BROWSER_CALLBACK, key, params)
            if result is not None and not result.duplicate:
                self._confirm(instance.id)
        current = service.engine.get(instance.id)
        return Reply(200, {"id": current.id, "state": current.state})

    def _accept_notification(
        self, instance: Instance, params: Mapping[str, str], request: InboundRequest
    ) -> None:
        key = f"notification:{_digest(params)}"
        if instance.flow == AstrapayLinkAdapter.flow:
            AstrapayLinkAdapter.notified(self._service, instance, params, key)
            return
        payload = {**params, "tx_id": params["tXid"], "raw": raw_record(request, params)}
        event = PaymentEvent.RECEIVE_NOTIFICATION  # same name in both payment flows
        result = self._service.fire(instance.id, event, Actor.NICEPAY_NOTIFICATION, key, payload)
        if result is not None and result.duplicate:
            return  # a redelivery: its inquiry already ran
        # Also when refused (e.g. settled): the inquiry may reveal a void or a refund.
        self._confirm(instance.id)

    def _confirm(self, instance_id: str) -> None:
        try:
            self._service.check_status(instance_id)
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

    def _find(self, params: Mapping[str, str]) -> Instance:
        store = self._service.engine.store
        tx_id, reference_no = params.get("tXid"), params.get("referenceNo")
        if not tx_id and not reference_no:
            raise NotificationPayloadError("neither tXid nor referenceNo given")
        found = store.find(tx_id=tx_id) if tx_id else []
        if not found and reference_no:
            found = [i for i in store.find(reference_no=reference_no) if i.tx_id in (None, tx_id)]
        if len(found) != 1:
            raise UnknownTransaction(
                f"no single payment for tXid {tx_id!r} / referenceNo {reference_no!r}"
            )
        return found[0]

    def _verify(self, instance: Instance, params: Mapping[str, str]) -> None:
        credentials = self._service.client.credentials
        if instance.flow == AstrapayLinkAdapter.flow:
            verify_link_token(params, imid=credentials.imid, merchant_key=credentials.merchant_key)
            return
        if "tXid" not in params:
            raise NotificationPayloadError("notification has no tXid")
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
        event: str,
    ) -> Reply:
        status = next((code for kind, code in _STATUS_OF.items() if isinstance(error, kind)), 400)
        logger.warning(
            "inbound request refused",
            extra={
                "instance": instance.id if instance else None,
                "event": event,
                "reason": str(error),
            },
        )
        if instance is not None:
            self._service.engine.record_refused(
                instance.id,
                event,
                actor=Actor.NICEPAY_NOTIFICATION
                if event == "receive_notification"
                else Actor.BROWSER_CALLBACK,
                idempotency_key=f"refused:{hashlib.sha256(request.body).hexdigest()[:16]}",
                reason=RejectReason.UNVERIFIED,
                detail=str(error),
                payload=_safe_params(request),
            )
        return Reply(status, {"error": type(error).__name__, "message": str(error)})


def _check_reference(instance: Instance, params: Mapping[str, str]) -> None:
    reference_no = params.get("referenceNo")
    if reference_no and instance.reference_no != reference_no:
        raise NotificationPayloadError("referenceNo does not match the payment's")


def raw_record(request: InboundRequest, params: Mapping[str, str]) -> dict[str, str]:
    """The notification as it arrived, for the log: body and headers, the token blanked out."""
    body, query = request.body.decode("utf-8", errors="replace"), request.query
    token = params.get("merchantToken")
    if token:  # the token may come in the body or in the query string
        body, query = body.replace(token, REDACTED), query.replace(token, REDACTED)
    headers = {name: request.headers[name] for name in _KEPT_HEADERS if name in request.headers}
    return {"body": body, "query": query, **headers, "client_ip": request.client_ip or ""}


_KEPT_HEADERS = ("content-type", "user-agent", "x-forwarded-for")


def _digest(params: Mapping[str, str]) -> str:
    canonical = json.dumps(dict(params), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _safe_params(request: InboundRequest) -> dict[str, str]:
    try:
        return parse_params(request)
    except NotificationError:
        return {"unparsed_body_bytes": str(len(request.body))}
