"""One framework-agnostic handler for NICEPAY's notifications and the customer's browser returns.

A notification is parsed, matched to its payment by ``tXid`` (or ``referenceNo`` while no tXid is
stored), checked against the stored reference and amount, and its token verified in constant
time. Only then is it recorded as the flow's notification event, and an inquiry decides what it
meant: the token does not cover ``status``, so nothing settles on a notification's word. A browser
return is unauthenticated: it is recorded and triggers a status check, nothing more. Duplicates
are absorbed by keys derived from the parameters and still answered with success.

Every request, refused or accepted, is also appended to the store's ``inbound_attempt`` table
(:meth:`~fsm.persistence.SqlStore.record_inbound`): when it arrived, the endpoint, the outcome and
status code, the typed error and its reason, the matched instance if any, the parameters with the
token redacted (an oversized body: its size only), and the client's address. The merchant key and
the token's value are blanked wherever they appear in what is stored or answered.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

from adapters.asgi import Reply
from adapters.astrapay import AstrapayLinkAdapter
from adapters.inbound import (
    MAX_BODY_BYTES,
    BodyTooLarge,
    InboundRequest,
    parse_params,
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

NOTIFICATION = "notification"
"""``inbound_attempt.endpoint`` of ``dbProcessUrl`` notifications."""
CALLBACK = "callback"
"""``inbound_attempt.endpoint`` of ``callBackUrl`` browser returns."""


class Outcome(StrEnum):
    """How an inbound request ended, as ``inbound_attempt.outcome`` records it."""

    ACCEPTED = "accepted"
    """Verified (a notification) or matched (a browser return), and acted on."""
    DUPLICATE = "duplicate"
    """A redelivery of a request already acted on: acknowledged, nothing new."""
    NOT_APPLIED = "not_applied"
    """Verified, but the flow refused its event (e.g. the payment has settled); recorded there."""
    REFUSED = "refused"
    """Answered with a 4xx and a typed error; nothing changed."""


class UnknownTransaction(NotificationPayloadError):
    """No stored payment or link matches the request's ``tXid`` or ``referenceNo``."""


class MissingFields(NotificationPayloadError):
    """Fields the request needs are absent or empty; ``fields`` names them."""

    def __init__(self, fields: Sequence[str], *, alternatives: bool = False) -> None:
        self.fields = tuple(fields)
        super().__init__(f"missing fields: {(' or ' if alternatives else ', ').join(self.fields)}")


class UnknownNotificationStatus(NotificationPayloadError):
    """A link notification's ``status`` is neither ``0`` (linked) nor ``1`` (failed).

    A payment notification's status is never read (an inquiry decides), but no inquiry exists for
    an account link, so its status decides, and one we do not know moves nothing.
    """


class SourceNotAllowed(NotificationError):
    """The notification came from an address outside the configured allowlist."""


_STATUS_OF = {
    BodyTooLarge: 413,
    UnknownTransaction: 404,
    SourceNotAllowed: 403,
    NotificationSignatureError: 401,
}
_LINK_STATUSES = frozenset({"0", "1"})
_STORED_LIMIT = 48 * 1024
"""Stored parameters larger than this (as JSON) keep only NICEPAY's documented fields."""
_DOCUMENTED_FIELDS = frozenset(
    [
        "tXid",
        "referenceNo",
        "payMethod",
        "amt",
        "iMid",
        "currency",
        "goodsNm",
        "billingNm",
        "billingPhone",
        "transDt",
        "transTm",
        "matchCl",
        "status",
        "mitraCd",
        "payNo",
        "payValidDt",
        "payValidTm",
        "receiptCode",
        "mRefNo",
        "depositDt",
        "depositTm",
        "resultCd",
        "resultMsg",
        "merchantToken",
        "tx_id",
    ]
)
_FIELD_LIMIT = 255  # the longest documented field, AN 255 (merchantToken)
_SECRET_MIN = 8  # a shorter "secret" would blank ordinary text


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
        """Verify, record and confirm one notification; never raises for what it is sent."""
        instance: Instance | None = None
        params: dict[str, str] | None = None
        try:
            self._check_source(request)
            params = _parse(request)
            self._require_ids(params)
            instance = self._find(params)
            _check_reference(instance, params)
            self._verify(instance, params)
        except NotificationError as error:
            return self._refuse(error, instance, request, params, NOTIFICATION)
        outcome = self._accept_notification(instance, params, request)
        self._record(NOTIFICATION, request, OK.status, outcome, instance, self._scrub(params))
        return OK

    def handle_oversized(self, endpoint: str, request: InboundRequest, limit: int) -> Reply:
        """Record and refuse (413) a body the ASGI app would not read past ``limit`` bytes."""
        error = BodyTooLarge(f"body exceeds {limit} bytes")
        return self._refuse(
            error, None, request, {}, CALLBACK if endpoint == CALLBACK else NOTIFICATION
        )

    def handle_callback(self, request: InboundRequest) -> Reply:
        """Record the browser's return and run a status check; never raises for what it is sent."""
        instance: Instance | None = None
        params: dict[str, str] | None = None
        try:
            params = _parse(request)
            instance = self._find(params)
            _check_reference(instance, params)
        except NotificationError as error:
            return self._refuse(error, instance, request, params, CALLBACK)
        # Keyed on what the return claims, not on every parameter: junk parameters added to a
        # forged return must not buy another write or another inquiry.
        service, scrubbed = self._service, self._scrub(params)
        claimed = scrubbed.get("tXid") or scrubbed.get("referenceNo") or ""
        key = f"callback:{_key_part(claimed)}:{_key_part(scrubbed.get('resultCd', ''))}"
        stored = self._fit(scrubbed)
        outcome = Outcome.ACCEPTED
        if instance.flow == AstrapayLinkAdapter.flow:
            AstrapayLinkAdapter.returned(service, instance, stored, key)
        else:
            event = (
                AstrapayPaymentEvent.RECEIVE_CALLBACK
                if instance.flow == "astrapay_payment"
                else PaymentEvent.RETURN_FROM_PARTNER
            )
            result = service.fire(instance.id, event, Actor.BROWSER_CALLBACK, key, stored)
            if result is None:
                outcome = Outcome.NOT_APPLIED
            elif result.duplicate:
                outcome = Outcome.DUPLICATE
            else:
                # The tXid it names is only a hint: the inquiry's answer must confirm it.
                self._confirm(instance.id, tx_id_hint=scrubbed.get("tXid"))
        current = service.engine.get(instance.id)
        self._record(CALLBACK, request, 200, outcome, instance, stored)
        return Reply(200, {"id": current.id, "state": current.state})

    def _accept_notification(
        self, instance: Instance, params: Mapping[str, str], request: InboundRequest
    ) -> Outcome:
        key = f"notification:{_digest(params)}"
        if instance.flow == AstrapayLinkAdapter.flow:
            stored = self._fit(self._scrub(params))
            AstrapayLinkAdapter.notified(self._service, instance, stored, key)
            return Outcome.ACCEPTED
        payload = {**params, "tx_id": params["tXid"], "raw": raw_record(request, params)}
        event = PaymentEvent.RECEIVE_NOTIFICATION  # same name in both payment flows
        result = self._service.fire(
            instance.id, event, Actor.NICEPAY_NOTIFICATION, key, self._fit(self._scrub(payload))
        )
        if result is not None and result.duplicate:
            return Outcome.DUPLICATE  # a redelivery: its inquiry already ran
        # Also when refused (e.g. settled): the inquiry may reveal a void or a refund.
        self._confirm(instance.id)
        return Outcome.ACCEPTED if result is not None else Outcome.NOT_APPLIED

    def _confirm(self, instance_id: str, *, tx_id_hint: str | None = None) -> None:
        try:
            self._service.check_status(instance_id, tx_id_hint=tx_id_hint)
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
                f"no single payment for tXid {_shown(tx_id)} / referenceNo {_shown(reference_no)}"
            )
        return found[0]

    def _verify(self, instance: Instance, params: Mapping[str, str]) -> None:
        credentials = self._service.client.credentials
        if instance.flow == AstrapayLinkAdapter.flow:
            verify_link_token(params, imid=credentials.imid, merchant_key=credentials.merchant_key)
            status = params.get("status")
            if status is not None and status not in _LINK_STATUSES:
                raise UnknownNotificationStatus(
                    f"link notification status {_shown(status)} is neither 0 (linked) "
                    "nor 1 (failed)"
                )
            return
        if "tXid" not in params:
            raise MissingFields(["tXid"])
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
        message = self._scrub_text(str(error))
        logger.warning(
            "inbound request refused",
            extra={
                "instance": instance.id if instance else None,
                "event": event,
                "reason": message,
            },
        )
        if params is None and not isinstance(error, BodyTooLarge):  # refused before parsing
            params = _parsed_or_empty(request)
        stored = self._fit(self._scrub(params or {}))
        if instance is not None:
            self._service.engine.record_refused(
                instance.id,
                event,
                actor=Actor.NICEPAY_NOTIFICATION
                if endpoint == NOTIFICATION
                else Actor.BROWSER_CALLBACK,
                idempotency_key=f"refused:{hashlib.sha256(request.body).hexdigest()[:16]}",
                reason=RejectReason.UNVERIFIED,
                detail=message,
                payload=stored,
            )
        name = type(error).__name__
        self._record(endpoint, request, status, Outcome.REFUSED, instance, stored, name, message)
        return Reply(status, {"error": name, "message": message})

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
        token = params.get("merchantToken") if params else None
        return [s for s in (key, token) if isinstance(s, str) and len(s) >= _SECRET_MIN]

    def _scrub_text(self, text: str) -> str:
        for secret in self._secrets():
            text = text.replace(secret, REDACTED)
        return text

    def _scrub(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` with the merchant key and the token's value blanked wherever they appear."""
        secrets = self._secrets(params)

        def blank(value: Any) -> Any:
            if isinstance(value, str):
                for secret in secrets:
                    value = value.replace(secret, REDACTED)
                return value
            if isinstance(value, Mapping):
                return {blank(k): blank(v) for k, v in value.items()}
            return value

        return {blank(k): blank(v) for k, v in params.items()}

    def _fit(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """``payload``, or only its documented fields when it is too large to store whole."""
        size = len(json.dumps(payload, ensure_ascii=False).encode())
        if size <= _STORED_LIMIT:
            return dict(payload)
        names = _DOCUMENTED_FIELDS | set(self._service.mandate_fields)
        kept = {
            name: value
            for name, value in payload.items()
            if name in names and isinstance(value, str) and len(value) <= _FIELD_LIMIT
        }
        return {**kept, "omitted": f"parameters of {size} bytes, too large to store whole"}


_REASONS = {
    Outcome.ACCEPTED: "acted on; a status check decides",
    Outcome.DUPLICATE: "a redelivery: acknowledged, nothing new",
    Outcome.NOT_APPLIED: "the flow refused the event; see the instance's rejections",
}


def _parse(request: InboundRequest) -> dict[str, str]:
    """The request's parameters, refused when they cannot be stored as text.

    Raises:
        BodyTooLarge: the body or the query string is too large.
        NotificationPayloadError: they cannot be parsed, or hold a NUL or a lone surrogate.
    """
    if len(request.query) > MAX_BODY_BYTES:
        raise BodyTooLarge(
            f"query string of {len(request.query)} characters exceeds {MAX_BODY_BYTES}"
        )
    params = parse_params(request)
    for name, value in params.items():
        try:
            (name + value).encode("utf-8")
        except UnicodeEncodeError:
            raise NotificationPayloadError(f"field {_shown(name)} is not valid text") from None
        if "\x00" in name or "\x00" in value:
            raise NotificationPayloadError(f"field {_shown(name)} holds a NUL character")
    return params


def _parsed_or_empty(request: InboundRequest) -> dict[str, str]:
    try:
        return _parse(request)
    except NotificationError:
        return {}


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


def _key_part(value: str) -> str:
    """``value`` for an idempotency key: itself when short and printable, else its digest."""
    if len(value) <= 64 and value.isprintable():
        return value
    return "sha256-" + hashlib.sha256(value.encode("utf-8", "backslashreplace")).hexdigest()[:16]


def _shown(value: str | None, limit: int = 64) -> str:
    """``value`` quoted for a message, cut to ``limit`` characters."""
    if value is None or len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"
