"""E-wallet payments through NICEPAY V2 Direct, on the engine of :mod:`fsm`.

A backend holds one :class:`PaymentService`: it starts payments and account links, checks their
status, refunds them, and records that the customer was told an outcome (``confirm_order``,
``confirm_link``: no timer does it for the merchant). :class:`NotificationHandler` (served by
:class:`NotificationApp`, or from any framework) takes NICEPAY's notifications and the
customer's browser returns and asks for the status checks they call for, which a
:class:`StatusWorker` runs off the request path; a :class:`Reconciler` acts on passed deadlines
and repairs calls a stopped process left open (``reconcile`` also reports outcomes left
unconfirmed).

The package is in layers, each importing only from the ones below it::

    errors          every error of the adapters, one tree
    telemetry       metrics and spans of NICEPAY calls, inbound requests, reconcilers, relays
                    (a layer with errors; no-ops until the service sets an OpenTelemetry SDK)
    nicepay/        the V2 wire: client, one exchange boundary, signing, messages, result codes
    wallets/        what each wallet does, answered without I/O where it can; the registry
    reconcile/      the call journal, status checks, repair, deadlines, unconfirmed outcomes
    inbound/        parsing and verification, the journal, the handler, the ASGI app
    refunds         cancel requests, keyed and recorded (a layer with inbound/ and
                    confirmations, the merchant's confirmations to the customer; none imports
                    another)
    service         the one place where the adapters meet the engine
    cli/            the ``ewallet-fsm`` command; the simulator is a tool beside the layers
"""

import logging

from adapters.errors import (
    BodyTimeout,
    BodyTooLarge,
    CallKeyTaken,
    CancelNotAllowed,
    CancelRefused,
    ConfigurationError,
    DuplicateReference,
    FieldUndefined,
    InstanceBusy,
    InvalidRefundRequest,
    InvalidRequest,
    InvalidToken,
    MalformedResponse,
    MerchantNotAllowed,
    MissingFields,
    NicepayUnavailable,
    NotConfirmable,
    NotificationError,
    NotificationPayloadError,
    NotificationSignatureError,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    RefundError,
    RefundExceedsPayment,
    RefundNotSettleable,
    RefundRequestConflict,
    RefundTotalsDisagree,
    SourceNotAllowed,
    TokenInQuery,
    UnknownAdapter,
    UnknownNotificationStatus,
    UnknownTransaction,
    WalletRefused,
)
from adapters.inbound.asgi import CALLBACK_PATH, NOTIFICATION_PATH, NotificationApp, Reply
from adapters.inbound.handler import NotificationHandler
from adapters.inbound.journal import InboundAttempt, InboundJournal
from adapters.inbound.parsing import InboundRequest
from adapters.nicepay.client import NicepayClient
from adapters.nicepay.config import Environment, InquiryRetry, NicepayCredentials
from adapters.nicepay.messages import Billing, CartItem, Delivery
from adapters.reconcile.deadlines import DeadlineRun
from adapters.reconcile.journal import CallIntent, CallJournal
from adapters.reconcile.recovery import ReconcilePass, Reconciler, Repair
from adapters.reconcile.work import CheckRequest, StatusWork, StatusWorkItem, WorkStatus
from adapters.reconcile.worker import StatusWorker, WorkRound
from adapters.refunds import Refund, RefundStatus, settle_by_hand
from adapters.service import PaymentService, Started
from adapters.telemetry import ServiceTelemetry
from adapters.wallets.base import CustomerStep, WalletAdapter
from adapters.wallets.orders import LinkOrder, PaymentOrder
from adapters.wallets.registry import ADAPTERS, adapter_for

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "ADAPTERS",
    "CALLBACK_PATH",
    "NOTIFICATION_PATH",
    "Billing",
    "BodyTimeout",
    "BodyTooLarge",
    "CallIntent",
    "CallJournal",
    "CallKeyTaken",
    "CancelNotAllowed",
    "CancelRefused",
    "CartItem",
    "CheckRequest",
    "ConfigurationError",
    "CustomerStep",
    "DeadlineRun",
    "Delivery",
    "DuplicateReference",
    "Environment",
    "FieldUndefined",
    "InboundAttempt",
    "InboundJournal",
    "InboundRequest",
    "InquiryRetry",
    "InstanceBusy",
    "InvalidRefundRequest",
    "InvalidRequest",
    "InvalidToken",
    "LinkOrder",
    "MalformedResponse",
    "MerchantNotAllowed",
    "MissingFields",
    "NicepayClient",
    "NicepayCredentials",
    "NicepayUnavailable",
    "NotConfirmable",
    "NotificationApp",
    "NotificationError",
    "NotificationHandler",
    "NotificationPayloadError",
    "NotificationSignatureError",
    "PaymentOrder",
    "PaymentService",
    "ProviderError",
    "ProviderRejected",
    "ProviderTimeout",
    "ProviderUnavailable",
    "ReconcilePass",
    "Reconciler",
    "Refund",
    "RefundError",
    "RefundExceedsPayment",
    "RefundNotSettleable",
    "RefundRequestConflict",
    "RefundStatus",
    "RefundTotalsDisagree",
    "Repair",
    "Reply",
    "ServiceTelemetry",
    "SourceNotAllowed",
    "Started",
    "StatusWork",
    "StatusWorkItem",
    "StatusWorker",
    "TokenInQuery",
    "UnknownAdapter",
    "UnknownNotificationStatus",
    "UnknownTransaction",
    "WalletAdapter",
    "WalletRefused",
    "WorkRound",
    "WorkStatus",
    "adapter_for",
    "settle_by_hand",
]
