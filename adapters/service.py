"""The payment service: one object a backend holds to start, follow and settle e-wallet payments.

It is where the adapters meet the engine (state, log, idempotency): it joins it with the NICEPAY
client (I/O) and the wallet adapters (what each wallet does), handing each adapter only the
steps of the payment it begins (:class:`~adapters.wallets.base.PaymentSteps`), never the engine.
Every observation becomes a flow event fired with the actor that observed it; nothing here
writes a state directly.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from adapters.confirmations import LINK_FLOWS, PAYMENT_FLOWS, confirm
from adapters.inbound.journal import InboundJournal
from adapters.nicepay.client import Call, NicepayClient
from adapters.reconcile.intents import CALL_LEASE, checked_lease, recorded_call
from adapters.reconcile.journal import CallJournal
from adapters.reconcile.status import HeardAnswer, check_status
from adapters.reconcile.work import StatusWork
from adapters.refunds import Refund, Refunds, refund_request
from adapters.wallets.astrapay import MANDATE_FIELDS
from adapters.wallets.base import CustomerStep, Gateway, PaymentSteps
from adapters.wallets.orders import LinkOrder, PaymentOrder
from adapters.wallets.registry import ACCOUNT_LINK, adapter_for
from fsm.definition import Actor
from fsm.engine import Engine
from fsm.errors import ConfigurationError, InvalidInstanceData, RejectReason, TransitionNotAllowed
from fsm.flows import LinkEvent, LinkState, Wallet
from fsm.model import Instance, TransitionResult
from fsm.store.leases import Leases
from fsm.store.protocol import Along
from fsm.store.sql import SqlStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Started:
    """A started payment or link, and where its customer goes next."""

    instance: Instance
    step: CustomerStep


def _timestamp_suffix() -> str:
    return uuid.uuid4().hex[:8]


class _Steps:
    """One payment's steps, as its wallet adapter may take them (:class:`PaymentSteps`)."""

    def __init__(
        self, engine: Engine, calls: CallJournal, payment_id: str, latest: Instance | None = None
    ) -> None:
        self._engine = engine
        self._calls = calls
        self._payment_id = payment_id
        self.latest = latest
        """The payment as the last step left it, when one was taken here."""

    def fire(
        self, event: str, *, actor: Actor, key: str, payload: Mapping[str, Any] | None = None
    ) -> bool:
        result = self._engine.fire_with_retry(
            self._payment_id, event, actor=actor, idempotency_key=key, payload=payload
        )
        self.latest = result.instance
        return not result.duplicate

    def report(
        self, event: str, *, actor: Actor, key: str, payload: Mapping[str, Any] | None = None
    ) -> None:
        with contextlib.suppress(TransitionNotAllowed):  # recorded by the engine
            self.fire(event, actor=actor, key=key, payload=payload)

    def recorded_call(
        self, call: Call, *, request: Mapping[str, Any], tx_id: str | None = None
    ) -> AbstractContextManager[object]:
        # its registered referenceNo, if renamed
        payment = self.latest or self._engine.get(self._payment_id)
        return recorded_call(self._calls, payment, call, request=request, tx_id=tx_id)


class PaymentService:
    """Starts payments and links, checks their status, and fires every event they produce."""

    def __init__(
        self,
        engine: Engine,
        client: NicepayClient,
        *,
        store: SqlStore,
        notification_url: str,
        callback_url: str,
        mandate_fields: tuple[str, ...] = MANDATE_FIELDS,
        reference_suffix: Callable[[], str] = _timestamp_suffix,
        cancel_lease: timedelta = CALL_LEASE,
    ) -> None:
        """Bind the engine and client; the URLs are where NICEPAY and the browser reach us.

        ``store`` is the database the engine keeps its instances in: the journal of NICEPAY
        calls, the journal of inbound requests, the status checks they ask for
        (:class:`~adapters.reconcile.worker.StatusWorker` runs them) and the reconcilers'
        leases are kept there too.
        ``cancel_lease`` is how long a cancel holds its payment against the reconcilers: as
        long as a cancel may take, like the reconcilers' grace (see :meth:`cancel`).

        Raises:
            ConfigurationError: ``store`` is not the engine's store (a journal kept elsewhere
                could not be read in the transactions that settle its payments), or
                ``cancel_lease`` is not positive.
        """
        if not engine.uses_store(store):
            raise ConfigurationError(
                "PaymentService needs the store its engine keeps instances in: "
                "build both from the same SqlStore"
            )
        self.engine = engine
        self.client = client
        self.calls = CallJournal(store, clock=engine.clock)
        self.inbound = InboundJournal(store)
        self.status_work = StatusWork(store)
        self.leases = Leases(store)
        self.notification_url = notification_url
        self.callback_url = callback_url
        self.mandate_fields = mandate_fields
        self.reference_suffix = reference_suffix
        self.cancel_lease = checked_lease(cancel_lease)

    @property
    def gateway(self) -> Gateway:
        """What a wallet adapter is given to reach NICEPAY: the client and these URLs."""
        return Gateway(self.client, self.notification_url, self.callback_url, self.reference_suffix)

    def steps_of(self, payment_id: str) -> PaymentSteps:
        """The steps of one payment, as its wallet adapter takes them."""
        return _Steps(self.engine, self.calls, payment_id)

    def start_payment(self, order: PaymentOrder, *, payment_id: str | None = None) -> Started:
        """Create the payment and send it to NICEPAY; returns where the customer goes.

        Raises:
            InvalidInstanceData: the order is malformed, or AstraPay has no linked account.
            ReferenceInUse: a payment of this flow with the order's ``reference_no`` is not
                final yet (a double click); nothing was stored or sent.
            ProviderError: NICEPAY refused or could not be reached; the refusal is recorded.
            TransitionNotAllowed: the flow refused a step (e.g. no mandate); recorded.
        """
        adapter = adapter_for(order.wallet)
        payment = self.engine.start(
            adapter.flow,
            instance_id=payment_id,
            wallet=order.wallet,
            amount=order.amount,
            reference_no=order.reference_no,
            mandate=self._mandate(order),
        )
        steps = _Steps(self.engine, self.calls, payment.id, payment)
        step = adapter.begin(payment, order, self.gateway, steps)
        return Started(steps.latest or payment, step)

    def start_link(self, order: LinkOrder, *, link_id: str | None = None) -> Started:
        """Create an AstraPay account link; returns the form the customer's browser submits.

        Raises:
            ReferenceInUse: a link with the order's ``reference_no`` is not final yet.
        """
        link = self.engine.start(
            ACCOUNT_LINK.flow,
            instance_id=link_id,
            wallet=Wallet.ASTRAPAY,
            reference_no=order.reference_no,
        )
        step = ACCOUNT_LINK.begin(link, order, self.gateway)
        return Started(link, step)

    def attach_mandate(
        self, link_id: str, mandate: str, *, by: str, reason: str
    ) -> TransitionResult:
        """An operator attaches a mandate to a link NICEPAY confirmed without one.

        Only a verified link notification or an operator sets a mandate; the operator's step is
        recorded with who did it and why. A browser return's mandate is only a hint, listed
        among the link's refused events (``ewallet-fsm history``) for the operator to check.

        Args:
            link_id: the ``astrapay_link`` instance, in ``mandate_missing``.
            mandate: the ``mandateID`` AstraPay granted.
            by: who attaches it.
            reason: why, e.g. where the mandate was confirmed.

        Returns:
            The applied step; the same request again returns it with ``duplicate`` set.

        Raises:
            InvalidInstanceData: ``link_id`` is not an account link, or an argument is empty or
                ``mandate`` longer than 64 characters; nothing was recorded.
            InstanceNotFound: no instance ``link_id``.
            TransitionNotAllowed: the link is not waiting for a mandate; recorded.
        """
        link = self.engine.get(link_id)
        if link.flow != ACCOUNT_LINK.flow:
            raise InvalidInstanceData(f"{link_id!r} is not an AstraPay account link")
        if not (mandate.strip() and by.strip() and reason.strip()) or len(mandate) > 64:
            raise InvalidInstanceData("a mandate of at most 64 characters, by and reason needed")
        digest = hashlib.sha256(mandate.encode()).hexdigest()[:16]
        return self.engine.fire_with_retry(
            link_id,
            LinkEvent.ATTACH_MANDATE,
            actor=Actor.OPERATOR,
            idempotency_key=f"operator:attach-mandate:{digest}",
            payload={"mandate": mandate, "by": by, "reason": reason},
        )

    def cancel(
        self,
        payment_id: str,
        *,
        request_id: str,
        amount: str | int | None = None,
        reason: str | None = None,
        requested_by: str | None = None,
        actor: Actor = Actor.MERCHANT,
    ) -> Refund:
        """Void or refund (part of) a paid payment, once per ``request_id`` (adapters.refunds).

        Args:
            payment_id: the payment.
            request_id: the caller's id for this refund (its idempotency key): the same id
                again returns the first outcome and sends nothing.
            amount: the amount to refund; whatever is left to refund when omitted.
            reason: ``cancelMsg``, shown at NICEPAY, and kept in the payment's log.
            requested_by: who asked (a person or a system), kept in the payment's log.
            actor: ``merchant`` or ``operator``.

        Raises:
            InvalidRefundRequest: a malformed field; nothing was stored.
            RefundRequestConflict: ``request_id`` was used with another amount.
            RefundExceedsPayment: more than is left to refund; nothing was sent.
            CancelNotAllowed: the payment's state or a documented wallet rule says no.
            CallInDoubt: another cancel of the payment has no stored answer yet; nothing was
                sent. The reconciler settles it by an inquiry after the grace period.
            InstanceBusy: a reconciler is acting on the payment; nothing was stored or sent.
                Ask again shortly. The cancel, in turn, holds the payment against the
                reconcilers while it is under way (for at most ``cancel_lease``).
            RefundTotalsDisagree: NICEPAY had refunded more than the recorded cancels
                accounted for; nothing was sent, and a person settles them first.
            InvalidInstanceData: the payment has no tXid yet.
        """
        request = refund_request(
            payment_id,
            request_id=request_id,
            amount=amount,
            reason=reason,
            requested_by=requested_by,
            actor=actor,
        )
        refunds = Refunds(self.engine, self.calls, self.client, lease=self.cancel_lease)
        return refunds.request(request)

    def check_status(
        self,
        payment_id: str,
        *,
        actor: Actor = Actor.MERCHANT,
        tx_id_hint: str | None = None,
        call_key: str | None = None,
        heard: list[HeardAnswer] | None = None,
    ) -> Instance:
        """Ask NICEPAY for the payment's status and apply the answer (see ``check_status``)."""
        return check_status(
            self.engine,
            self.calls,
            self.client,
            payment_id,
            actor=actor,
            tx_id_hint=tx_id_hint,
            call_key=call_key,
            heard=heard,
        )

    def fire(
        self,
        instance_id: str,
        event: str,
        actor: Actor,
        key: str,
        payload: Mapping[str, Any] | None = None,
        along: Along | None = None,
    ) -> TransitionResult | None:
        """Fire ``event``; a refusal is recorded by the engine and returns ``None``.

        ``along`` commits with the step, and only when it is applied (:meth:`Engine.fire`).
        """
        try:
            return self.engine.fire_with_retry(
                instance_id, event, actor=actor, idempotency_key=key, payload=payload, along=along
            )
        except TransitionNotAllowed:
            return None

    def confirm_order(self, payment_id: str, *, actor: Actor = Actor.MERCHANT) -> TransitionResult:
        """Record that the merchant told the customer the payment's outcome.

        Call it once the customer has been told, on ``payment.paid``, ``payment.failed`` or
        ``payment.expired``: the payment moves to ``order_confirmed`` (AstraPay:
        ``customer_updated``), ``failure_confirmed`` or ``expiry_confirmed``, and
        ``payment.confirmed`` is emitted. No timer does it on the merchant's behalf; an outcome
        left unconfirmed is reported (:func:`adapters.reconcile.unconfirmed.unconfirmed`).

        Args:
            payment_id: the payment.
            actor: ``merchant``, or ``operator`` for a customer told by hand.

        Returns:
            The recorded step; asking again returns it with ``duplicate`` set.

        Raises:
            InstanceNotFound: no such payment.
            InvalidInstanceData: ``payment_id`` is an account link; nothing was recorded.
            NotConfirmable: the payment has no outcome to confirm (still pending, reversed, or
                a version 1 failure); nothing was recorded.
            ActorNotAllowed: ``actor`` may not confirm it (only the merchant or an operator
                may); nothing was recorded.
        """
        return confirm(self.engine, payment_id, PAYMENT_FLOWS, actor=actor)

    def confirm_link(self, link_id: str, *, actor: Actor = Actor.MERCHANT) -> TransitionResult:
        """Record that the merchant told the customer the AstraPay account has been registered.

        Call it on ``link.linked``, once the customer has been told: the link moves to
        ``registration_confirmed`` and ``link.confirmed`` is emitted; it may still be unlinked.

        Returns:
            The recorded step; asking again returns it with ``duplicate`` set.

        Raises:
            InstanceNotFound: no such link.
            InvalidInstanceData: ``link_id`` is a payment; nothing was recorded.
            NotConfirmable: the link is not linked (or was linked under version 1); nothing
                was recorded.
            ActorNotAllowed: ``actor`` may not confirm it; nothing was recorded.
        """
        return confirm(self.engine, link_id, LINK_FLOWS, actor=actor)

    def record_hint(
        self, instance: Instance, event: str, key: str, params: Mapping[str, Any]
    ) -> None:
        """Record an unauthenticated browser return that moves nothing."""
        self.engine.record_refused(
            instance.id,
            event,
            actor=Actor.BROWSER_CALLBACK,
            idempotency_key=key,
            reason=RejectReason.HINT,
            detail="unauthenticated browser return: recorded, no effect",
            payload=params,
        )

    def _mandate(self, order: PaymentOrder) -> str | None:
        if order.wallet != Wallet.ASTRAPAY:
            return None
        if order.link_id is None:
            raise InvalidInstanceData("an AstraPay payment needs the customer's link_id")
        link = self.engine.get(order.link_id)
        if link.flow != ACCOUNT_LINK.flow:
            raise InvalidInstanceData(f"{order.link_id!r} is not an AstraPay account link")
        # Only a linked account's mandate is usable: after an unlink it stays stored, revoked.
        usable = link.state in (LinkState.LINKED, LinkState.REGISTRATION_CONFIRMED)
        return link.mandate if usable else None


__all__ = ["LinkOrder", "PaymentOrder", "PaymentService", "Started"]
