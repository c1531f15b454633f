"""Which payment or link a request is about, and whether its token says NICEPAY sent it.

A request is matched to its instance by ``tXid``, or by ``referenceNo`` while no tXid is stored,
and checked against the stored reference. A notification's token is then verified in constant
time, the way its instance's adapter says its notifications are signed
(:class:`~adapters.wallets.answers.NotificationKind`): a payment's with T3 over the stored
amount, an account link's with T4. Every refusal is a typed error of :mod:`adapters.errors`.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from adapters.errors import (
    MissingFields,
    NotificationPayloadError,
    SourceNotAllowed,
    UnknownAdapter,
    UnknownNotificationStatus,
    UnknownTransaction,
)
from adapters.inbound.asgi import Network
from adapters.inbound.parsing import InboundRequest, verify_link_token, verify_notification_token
from adapters.inbound.redact import shown
from adapters.nicepay.config import NicepayCredentials
from adapters.wallets.answers import NotificationKind
from adapters.wallets.base import FlowAdapter
from adapters.wallets.registry import adapter_of
from fsm.model import Instance

TX_ID_LENGTH = 30
"""NICEPAY's tXid: iMid (10), payMethod (2), WIB date and time (14), a counter (4) (§5)."""
_LINK_STATUSES = frozenset({"0", "1"})

logger = logging.getLogger(__name__)


class InstanceFinder(Protocol):
    """The store's lookup of instances by NICEPAY's identifiers."""

    def find(self, *, tx_id: str | None = None, reference_no: str | None = None) -> list[Instance]:
        """Instances with the given ``tXid`` and/or ``referenceNo``."""
        ...


def check_source(request: InboundRequest, networks: Sequence[Network] | None) -> None:
    """Refuse a notification from outside ``networks`` (``None``: from anywhere).

    Raises:
        SourceNotAllowed: the client's address is unknown or outside every network.
    """
    if networks is None:
        return
    try:
        address = ipaddress.ip_address(request.client_ip or "")
    except ValueError:
        raise SourceNotAllowed("notification source address unknown") from None
    if not any(address in network for network in networks):
        raise SourceNotAllowed(f"notifications are not accepted from {address}")


def require_ids(params: Mapping[str, str], instances: InstanceFinder) -> None:
    """A notification names its ``referenceNo`` and, unless it is for a link, its ``tXid``.

    Raises:
        MissingFields: one is missing.
    """
    missing = [name for name in ("tXid", "referenceNo") if not params.get(name)]
    if "referenceNo" in missing:
        raise MissingFields(missing)
    if missing:  # only an account link's notification has no tXid
        candidates = instances.find(reference_no=params["referenceNo"])
        if all(_names_tx_id(instance) for instance in candidates):
            raise MissingFields(missing)


def find_instance(params: Mapping[str, str], instances: InstanceFinder) -> Instance:
    """The one payment or link a request names.

    Raises:
        MissingFields: it names neither a ``tXid`` nor a ``referenceNo``.
        UnknownTransaction: no single stored instance matches.
    """
    tx_id, reference_no = params.get("tXid"), params.get("referenceNo")
    if not tx_id and not reference_no:
        raise MissingFields(("tXid", "referenceNo"), alternatives=True)
    found = instances.find(tx_id=tx_id) if tx_id else []
    if not found and reference_no:
        found = _by_reference(instances.find(reference_no=reference_no), tx_id)
    if len(found) != 1:
        raise _not_found(params)
    return found[0]


def _not_found(params: Mapping[str, str]) -> UnknownTransaction:
    """One answer for every request no payment here takes, so it tells a caller nothing more."""
    tx_id, reference_no = params.get("tXid"), params.get("referenceNo")
    return UnknownTransaction(
        f"no single payment for tXid {shown(tx_id)} / referenceNo {shown(reference_no)}"
    )


def answering_adapter(instance: Instance, params: Mapping[str, str]) -> FlowAdapter:
    """The adapter that answers for ``instance``, which ``params`` named.

    An instance no adapter serves is answered as if it did not exist: the caller is not
    authenticated yet, and must learn neither its id nor the flows this service runs.

    Raises:
        UnknownTransaction: no adapter here serves its flow and wallet.
    """
    try:
        return adapter_of(instance)
    except UnknownAdapter as error:
        logger.warning(
            "inbound request names an instance no adapter serves",
            extra={"instance": instance.id, "reason": str(error)},
        )
        raise _not_found(params) from None


def check_reference(instance: Instance, params: Mapping[str, str]) -> None:
    """Refuse a request whose ``referenceNo`` is not the instance's.

    Raises:
        NotificationPayloadError: it names another reference.
    """
    reference_no = params.get("referenceNo")
    if reference_no and instance.reference_no != reference_no:
        raise NotificationPayloadError("referenceNo does not match the payment's")


def verify_notification(
    adapter: FlowAdapter,
    instance: Instance,
    params: Mapping[str, str],
    credentials: NicepayCredentials,
) -> None:
    """Verify a notification's token the way ``adapter``'s notifications are signed.

    Raises:
        NotificationError: the token, the merchant, the amount, the tXid or the status is not
            what NICEPAY would send for this instance.
    """
    _VERIFIERS[adapter.notification_kind](instance, params, credentials)


def _verify_transaction(
    instance: Instance, params: Mapping[str, str], credentials: NicepayCredentials
) -> None:
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


def _verify_account_link(
    instance: Instance, params: Mapping[str, str], credentials: NicepayCredentials
) -> None:
    verify_link_token(params, imid=credentials.imid, merchant_key=credentials.merchant_key)
    status = params.get("status")
    if status is not None and status not in _LINK_STATUSES:
        raise UnknownNotificationStatus(
            f"link notification status {shown(status)} is neither 0 (linked) nor 1 (failed)"
        )


_VERIFIERS: Mapping[
    NotificationKind, Callable[[Instance, Mapping[str, str], NicepayCredentials], None]
] = {
    NotificationKind.TRANSACTION: _verify_transaction,
    NotificationKind.ACCOUNT_LINK: _verify_account_link,
}


def _names_tx_id(instance: Instance) -> bool:
    """Whether notifications about ``instance`` name a tXid (all but an account link's)."""
    try:
        return adapter_of(instance).notification_kind is not NotificationKind.ACCOUNT_LINK
    except UnknownAdapter:
        return True


def _by_reference(instances: Sequence[Instance], tx_id: str | None) -> list[Instance]:
    """Of the instances with a request's referenceNo, the ones it may be about.

    An instance bound to another tXid is not. The store keeps one live (not final) instance per
    flow and reference, and only a payment's request names a tXid, so the live one answers it;
    ended ones are matched only when none is live (a late notification, recorded there).
    """
    unbound = [instance for instance in instances if instance.tx_id in (None, tx_id)]
    live = [instance for instance in unbound if instance.deadline_at is not None]
    if len(live) > 1:  # a link and a payment under one reference
        live = [i for i in live if _names_tx_id(i) == bool(tx_id)]
    return live or unbound


def _check_bindable_tx_id(tx_id: str, instance: Instance, imid: str) -> None:
    """Refuse a tXid a notification could not have been given by NICEPAY, before it binds.

    T3 signs ``iMid + tXid + amt``, and the browser's linkInitiate form carries T5, which signs
    ``iMid + referenceNo + amt``: a "notification" whose tXid is a reference would verify with
    the customer's own form token. NICEPAY's tXids start with the merchant's iMid and have a
    fixed length, which a reference does not share unless the merchant makes it so.
    """
    if tx_id == instance.reference_no or len(tx_id) != TX_ID_LENGTH or not tx_id.startswith(imid):
        raise NotificationPayloadError(f"tXid {shown(tx_id)} is not one NICEPAY issues")


__all__ = [
    "TX_ID_LENGTH",
    "InstanceFinder",
    "answering_adapter",
    "check_reference",
    "check_source",
    "find_instance",
    "require_ids",
    "verify_notification",
]
