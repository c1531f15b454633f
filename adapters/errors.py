"""Every error the adapters raise: providers, notifications, refunds and configuration.

Each class derives from :class:`fsm.errors.FsmError`, so one ``except FsmError`` still catches
everything the library raises. Context lives in attributes, and ``retryable`` says whether the
same call can succeed later::

    FsmError (fsm.errors)               root; .retryable (default False)
    ├── ProviderError                   .provider, .http_status, .provider_code, .provider_message,
    │                                   .declined (a documented refusal: nothing was done)
    │   ├── ProviderUnavailable         transport failure or 5xx; retryable
    │   │   ├── ProviderTimeout         also a TimeoutError
    │   │   ├── NicepayUnavailable      resultCd 1001-1004 (connection, socket, server,
    │   │   │                           timeout), 9002 busy
    │   │   └── MalformedResponse       a 2xx answer that is not a JSON object with a resultCd
    │   └── ProviderRejected            the provider answered and refused; not retryable
    │       ├── DuplicateReference      9009: referenceNo already registered
    │       ├── InvalidToken            9010: merchantToken does not verify
    │       ├── FieldUndefined          9013-9020, 9024-9028: NICEPAY found a field of ours
    │       │                           "Undefined"; .field
    │       ├── InvalidRequest          9007, 9008, 9022, 9023, 9031, 9301, 9751: our request
    │       ├── MerchantNotAllowed      9011, 9012, 9021: merchant ID or its NICEPAY setup
    │       ├── WalletRefused           9001, 9750, 9752: registration or the wallet failed
    │       └── CancelRefused           9314, 9319, 9321, 9334: the cancel rules said no
    ├── NotificationError               an inbound notification or return was refused
    │   ├── NotificationSignatureError  token missing or wrong (401)
    │   ├── SourceNotAllowed            sent from outside the allowed networks (403)
    │   └── NotificationPayloadError    unparseable, incomplete, or not the payment's (400)
    │       ├── UnknownTransaction      no single payment or link matches it (404)
    │       ├── MissingFields           required fields absent or empty; .fields
    │       ├── UnknownNotificationStatus  a link notification's status is neither 0 nor 1
    │       ├── BodyTooLarge            over the size limit, refused unread (413)
    │       ├── BodyTimeout             not received whole in time (408)
    │       └── TokenInQuery            a merchantToken in the query string
    ├── CallInDoubt                     an exclusive provider call has no stored answer yet
    ├── InstanceBusy                    a reconciler is acting on the payment; retryable
    ├── CallKeyTaken                    a provider call with this key was already recorded
    ├── NotConfirmable                  no outcome to confirm to the customer; nothing recorded
    ├── RefundError                     .payment_id, .request_id; nothing was sent
    │   ├── InvalidRefundRequest        a malformed request id, amount, reason or requester
    │   ├── RefundRequestConflict       the request id was used with another amount
    │   ├── RefundExceedsPayment        more than is left to refund; .amount, .refundable
    │   ├── CancelNotAllowed            a documented cancel rule, or the state, says no; .rule
    │   ├── RefundNotSettleable         a settlement by hand the request or NICEPAY refuses
    │   └── RefundTotalsDisagree        NICEPAY refunded more than the call journal accounts for
    ├── DeliveryFailed                  a sink could not take an outbox event; retryable
    ├── WebhookSignatureError           a webhook's signature is missing, wrong or too old
    └── ConfigurationError (fsm.errors) missing or wrong settings
        └── UnknownAdapter              no wallet adapter registered under that name; .known

Which ``resultCd`` raises which class is NICEPAY's table, in
:mod:`adapters.nicepay.result_codes`. The messages of notification errors quote at most a short,
token-blanked piece of what was sent, since the input may hold a token.
"""

from __future__ import annotations

from collections.abc import Sequence

from fsm.errors import ConfigurationError, FsmError


class ProviderError(FsmError):
    """A payment provider call failed; carries what the provider said, never credentials."""

    declined = False
    """Whether the provider refused the request in a way its documentation defines, so it did
    nothing. Anything else (an undocumented code, a bare HTTP error, a lost answer) may have
    come after the provider acted: a call that moves money stays in doubt for an inquiry."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        http_status: int | None = None,
        provider_code: str | None = None,
        provider_message: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        self.provider = provider
        self.http_status = http_status
        self.provider_code = provider_code
        self.provider_message = provider_message
        if retryable is not None:
            self.retryable = retryable
        super().__init__(message)


class ProviderUnavailable(ProviderError):
    """The provider could not be reached or answered with a server error."""

    retryable = True


class ProviderTimeout(ProviderUnavailable, TimeoutError):
    """The provider did not answer in time."""


class NicepayUnavailable(ProviderUnavailable):
    """NICEPAY answered, but reported a connection, server or capacity problem on its side."""


class MalformedResponse(ProviderUnavailable):
    """The answer was not a JSON object carrying a usable result.

    The reference counts a non-JSON body as a transport failure, so this is retryable.
    """


class ProviderRejected(ProviderError):
    """The provider answered, and refused the request."""


class DuplicateReference(ProviderRejected):
    """``referenceNo`` was already registered (9009)."""


class InvalidToken(ProviderRejected):
    """NICEPAY did not accept the ``merchantToken`` (9010): wrong key, amount or timeStamp."""


class InvalidRequest(ProviderRejected):
    """A field of the request is malformed or inconsistent (amount, cartData, time, cancelType)."""


class MerchantNotAllowed(ProviderRejected):
    """The merchant ID is unknown or not set up for this pay method or duplicate check."""


class WalletRefused(ProviderRejected):
    """Registration or the e-wallet partner failed the transaction."""


class CancelRefused(ProviderRejected):
    """The cancel or refund is not allowed: amount, state or time window."""


class FieldUndefined(ProviderRejected):
    """NICEPAY reported a required field as "Undefined" (missing).

    Attributes:
        field: The NICEPAY field name, read from ``resultMsg`` when it names one, otherwise the
            documented code order (which is unconfirmed); ``None`` when neither tells.
    """

    field: str | None = None


class NotificationError(FsmError):
    """An inbound notification or browser return was refused; nothing was changed."""


class NotificationSignatureError(NotificationError):
    """The notification's token is missing or does not verify."""


class SourceNotAllowed(NotificationError):
    """The notification came from an address outside the configured allowlist."""


class NotificationPayloadError(NotificationError, ValueError):
    """The notification cannot be parsed or does not match the stored payment."""


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


class BodyTooLarge(NotificationPayloadError):
    """The body exceeds the size the endpoints read."""


class BodyTimeout(NotificationPayloadError):
    """The body did not arrive whole within the read timeout; answered 408, its bytes unread."""


class TokenInQuery(NotificationPayloadError):
    """A ``merchantToken`` came in the query string, which access logs and proxies record."""


class CallInDoubt(FsmError):
    """An exclusive provider call for the instance has no stored answer yet.

    Sending it again could move money twice (a second refund); the reconciler settles the first
    by an inquiry once its grace period has passed, since until then it may still be under way.
    """

    def __init__(self, instance_id: str, call: str) -> None:
        super().__init__(
            f"the last {call} for {instance_id!r} has no stored answer; reconciling settles it "
            "by an inquiry once the grace period has passed"
        )
        self.instance_id = instance_id
        self.call = call


class InstanceBusy(FsmError):
    """A reconciler holds the instance (a status check, a repair, a deadline); nothing was
    recorded or sent.

    A call that moves money claims its instance for as long as it is under way, so that no
    reconciler repairs its intent meanwhile; it cannot while a reconciler holds the claim. The
    reconciler's work takes seconds: the same call may be made again shortly.
    """

    retryable = True

    def __init__(self, instance_id: str, call: str) -> None:
        super().__init__(
            f"a reconciler is acting on {instance_id!r}; no {call} was sent, try again shortly"
        )
        self.instance_id = instance_id
        self.call = call


class CallKeyTaken(FsmError):
    """A provider call under this key was already recorded for the instance; nothing was sent.

    The key is the caller's idempotency key for one call (a refund request's id): the first
    call's intent (``intent_id``) holds what happened, and no second call may be sent.
    """

    def __init__(self, instance_id: str, call_key: str, intent_id: int) -> None:
        super().__init__(f"a call keyed {call_key!r} was already recorded for {instance_id!r}")
        self.instance_id = instance_id
        self.call_key = call_key
        self.intent_id = intent_id


class NotConfirmable(FsmError):
    """The merchant asked to record that it told the customer an outcome the payment or link
    does not have (still pending, reversed before any confirmation, or an outcome its flow
    version has no confirmation for: a version 1 failure or link); nothing was recorded.
    ``state`` is where it is."""

    def __init__(self, instance_id: str, *, flow: str, flow_version: int, state: str) -> None:
        super().__init__(
            f"{flow} {instance_id!r} (v{flow_version}) is {state!r}: no outcome the merchant "
            "confirms to the customer there"
        )
        self.instance_id = instance_id
        self.flow = flow
        self.flow_version = flow_version
        self.state = state


class RefundError(FsmError):
    """A refund request was refused before anything was sent to NICEPAY."""

    def __init__(self, message: str, *, payment_id: str, request_id: str) -> None:
        super().__init__(message)
        self.payment_id = payment_id
        self.request_id = request_id


class InvalidRefundRequest(RefundError, ValueError):
    """The request id, amount, reason or requester is malformed; nothing was stored."""


class RefundRequestConflict(RefundError):
    """The request id was already used for this payment with another amount."""

    def __init__(self, *, payment_id: str, request_id: str, recorded: str, asked: str) -> None:
        super().__init__(
            f"refund request {request_id!r} of {payment_id!r} was made for {recorded}, "
            f"not {asked}: use a new request id for another refund",
            payment_id=payment_id,
            request_id=request_id,
        )
        self.recorded = recorded
        self.asked = asked


class RefundExceedsPayment(RefundError):
    """The refund would take the refunded total past the amount paid; nothing was sent."""

    def __init__(self, *, payment_id: str, request_id: str, amount: str, refundable: str) -> None:
        super().__init__(
            f"refund request {request_id!r} of {payment_id!r} asks for {amount}, "
            f"but only {refundable} is left to refund",
            payment_id=payment_id,
            request_id=request_id,
        )
        self.amount = amount
        self.refundable = refundable


class CancelNotAllowed(RefundError):
    """A cancel rule the reference documents (a wallet's window or blackout, the 90 days) or
    the payment's state refuses the cancel; ``rule`` names it."""

    def __init__(self, message: str, *, payment_id: str, request_id: str, rule: str) -> None:
        super().__init__(message, payment_id=payment_id, request_id=request_id)
        self.rule = rule


class RefundNotSettleable(RefundError):
    """A person asked to settle a refund request by hand that is not in doubt, or that
    NICEPAY's refunded total already settles otherwise; nothing was changed."""


class RefundTotalsDisagree(RefundError):
    """NICEPAY's refunded total, asked right before the cancel, is above what the payment's
    recorded cancels account for, and a cancel closed as not refunded (by a repair that came too
    early, or a person) may explain it: those went back in doubt, and nothing was sent.
    ``nicepay_total`` and ``accounted`` are the two as they stand now; the reconciler or a
    person settles the cancels in doubt (:func:`~adapters.refunds.settle.settle_by_hand`)."""

    def __init__(
        self, message: str, *, payment_id: str, request_id: str, nicepay_total: int, accounted: int
    ) -> None:
        super().__init__(message, payment_id=payment_id, request_id=request_id)
        self.nicepay_total = nicepay_total
        self.accounted = accounted


class DeliveryFailed(FsmError):
    """A sink could not take an outbox event (a refused webhook, an unconfirmed publish).

    The relay tries again later; ``sink`` names the sink, never its credentials.
    """

    retryable = True

    def __init__(self, message: str, *, sink: str) -> None:
        self.sink = sink
        super().__init__(message)


class WebhookSignatureError(FsmError):
    """A webhook's ``Ewallet-Signature`` is missing, malformed, wrong, or outside the tolerance."""


class UnknownAdapter(ConfigurationError, KeyError):
    """No wallet adapter is registered under the requested name; ``known`` lists the choices."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        self.known = tuple(known)
        super().__init__(f"unknown adapter {name!r}; registered: {', '.join(self.known)}")

    def __str__(self) -> str:
        return str(self.args[0])


__all__ = [
    "BodyTimeout",
    "BodyTooLarge",
    "CallInDoubt",
    "CallKeyTaken",
    "CancelNotAllowed",
    "CancelRefused",
    "ConfigurationError",
    "DeliveryFailed",
    "DuplicateReference",
    "FieldUndefined",
    "InstanceBusy",
    "InvalidRefundRequest",
    "InvalidRequest",
    "InvalidToken",
    "MalformedResponse",
    "MerchantNotAllowed",
    "MissingFields",
    "NicepayUnavailable",
    "NotConfirmable",
    "NotificationError",
    "NotificationPayloadError",
    "NotificationSignatureError",
    "ProviderError",
    "ProviderRejected",
    "ProviderTimeout",
    "ProviderUnavailable",
    "RefundError",
    "RefundExceedsPayment",
    "RefundNotSettleable",
    "RefundRequestConflict",
    "SourceNotAllowed",
    "TokenInQuery",
    "UnknownAdapter",
    "UnknownNotificationStatus",
    "UnknownTransaction",
    "WalletRefused",
    "WebhookSignatureError",
]
