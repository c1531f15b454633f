"""What the customer's browser is answered when it comes back from the wallet.

The return is unauthenticated and the customer's own: it is answered with where the payment
stands in a word (``pending``, ``paid``, ``failed``, ``refunded``; ``linked`` for an account
link) and its order reference, never the payment's internal id or state. With a return URL of
the merchant's, the browser is sent there (``303``) with those two as query parameters; without
one, it gets a small status page that reloads itself until the outcome is decided (or a person
must look). The return is not authenticated, and neither is what it is answered: act on the
events (:mod:`fsm.events`), never on a return URL's ``outcome``."""

from __future__ import annotations

import html
from enum import StrEnum
from typing import Final
from urllib.parse import urlencode, urlsplit

from adapters.inbound.asgi import Reply
from fsm.definition import FlowDefinition, StateKind
from fsm.errors import ConfigurationError
from fsm.model import Instance

REFRESH_SECONDS: Final = 5
"""How often the status page reloads while the outcome is pending."""
NO_STORE: Final = (("cache-control", "no-store"),)
"""Where a payment stands changes: no browser or proxy may keep an answer."""


class CustomerOutcome(StrEnum):
    """Where a payment stands, in the one word its customer is told."""

    PENDING = "pending"
    PAID = "paid"
    LINKED = "linked"
    FAILED = "failed"
    REFUNDED = "refunded"
    """Paid, then voided or refunded (in part or whole)."""


def customer_outcome(flow: FlowDefinition, instance: Instance) -> CustomerOutcome:
    """The word for ``instance``'s state: a success is ``paid`` (``linked`` for an instance that
    moves no money), a failure ``failed``, a reversal ``refunded``, anything else ``pending``."""
    kind = flow.state(instance.state).kind
    if kind is StateKind.SUCCEEDED:
        return CustomerOutcome.PAID if instance.amount else CustomerOutcome.LINKED
    if kind is StateKind.REVERSED:
        return CustomerOutcome.REFUNDED
    if kind is StateKind.FAILED:
        return CustomerOutcome.FAILED
    return CustomerOutcome.PENDING


class ReturnPage:
    """Answers a browser return: a redirect to the merchant's return URL, or the status page."""

    def __init__(self, return_url: str | None = None) -> None:
        """``return_url``: where to send the browser (an absolute http or https URL, its own
        query kept); ``None`` for the status page.

        Raises:
            ConfigurationError: ``return_url`` is not an absolute http(s) URL.
        """
        if return_url is not None:
            parts = urlsplit(return_url)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
                raise ConfigurationError(
                    "the return URL must be an absolute http or https URL without a fragment"
                )
        self.return_url = return_url

    def reply(self, flow: FlowDefinition, instance: Instance) -> Reply:
        """The answer to a return of ``instance``, as it stands."""
        outcome = customer_outcome(flow, instance)
        reference = instance.reference_no or ""
        if self.return_url is not None:
            query = urlencode({"referenceNo": reference, "outcome": outcome.value})
            joiner = "&" if "?" in self.return_url else "?"
            location = f"{self.return_url}{joiner}{query}"
            return Reply(303, headers=(("location", location), *NO_STORE))
        # A payment waiting for a person changes only when someone acts: no reloading.
        waits = outcome is CustomerOutcome.PENDING and flow.state(instance.state).kind is not (
            StateKind.REVIEW
        )
        return Reply(200, html=status_page(reference, outcome, refresh=waits), headers=NO_STORE)


_MESSAGES: Final = {
    CustomerOutcome.PENDING: "We are waiting for your wallet to confirm the payment.",
    CustomerOutcome.PAID: "Your payment is complete. Thank you.",
    CustomerOutcome.LINKED: "Your account is linked.",
    CustomerOutcome.FAILED: "The payment did not go through. Nothing was charged.",
    CustomerOutcome.REFUNDED: "Your payment was refunded.",
}


def status_page(reference: str, outcome: CustomerOutcome, *, refresh: bool = False) -> str:
    """The status page for an order ``reference`` and its ``outcome``, naming nothing but the
    reference; with ``refresh``, it reloads itself every :data:`REFRESH_SECONDS`."""
    reload = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' if refresh else ""
    shown = html.escape(reference)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{reload}<title>Order {shown}</title></head>"
        f'<body data-outcome="{outcome.value}"><main><h1>Order {shown}</h1>'
        f"<p>{_MESSAGES[outcome]}</p></main></body></html>"
    )


__all__ = ["REFRESH_SECONDS", "CustomerOutcome", "ReturnPage", "customer_outcome", "status_page"]
