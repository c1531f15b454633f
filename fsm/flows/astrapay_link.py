"""Linking a customer's AstraPay account once (``linkEnable.do``), so later payments use a mandate.

NICEPAY documents no link-status or unlink endpoint, so LINKED and UNLINKED are kept locally. How
the mandate comes back is undocumented: a verified link notification confirms the link, and a link
confirmed without a mandate waits in ``mandate_missing`` for an operator. Only those two set a
mandate: the browser's return is unauthenticated, so a mandate it carries is only recorded.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from fsm.definition import Actor, Deadline, FlowDefinition, StateKind, StateSpec, transition
from fsm.flows._common import Wallet


class LinkState(StrEnum):
    """States of an AstraPay account link."""

    LINK_REQUESTED = "link_requested"
    PARTNER_REDIRECT_RECEIVED = "partner_redirect_received"
    REGISTRATION_PAGE_SHOWN = "registration_page_shown"
    CUSTOMER_REGISTERING = "customer_registering"
    MANDATE_MISSING = "mandate_missing"
    LINKED = "linked"
    REGISTRATION_CONFIRMED = "registration_confirmed"
    """From version 2: the merchant told the customer the account has been registered."""
    LINK_FAILED = "link_failed"
    LINK_EXPIRED = "link_expired"
    UNLINKED = "unlinked"


class LinkEvent(StrEnum):
    """Events of an AstraPay account link."""

    RECEIVE_PARTNER_REDIRECT = "receive_partner_redirect"
    SHOW_REGISTRATION_PAGE = "show_registration_page"
    BEGIN_REGISTRATION = "begin_registration"
    CONFIRM_LINK = "confirm_link"
    CONFIRM_LINK_WITHOUT_MANDATE = "confirm_link_without_mandate"
    ATTACH_MANDATE = "attach_mandate"
    FAIL_LINK = "fail_link"
    EXPIRE_LINK = "expire_link"
    UNLINK = "unlink"
    CONFIRM_REGISTRATION = "confirm_registration"
    """From version 2: the merchant records that it told the customer."""


S, E, A = LinkState, LinkEvent, Actor
PENDING = (
    S.LINK_REQUESTED,
    S.PARTNER_REDIRECT_RECEIVED,
    S.REGISTRATION_PAGE_SHOWN,
    S.CUSTOMER_REGISTERING,
)


def _pending(name: LinkState, kind: StateKind, minutes: int, description: str) -> StateSpec:
    return StateSpec(
        name,
        kind,
        deadline=Deadline(timedelta(minutes=minutes), E.EXPIRE_LINK),
        description=description,
    )


ASTRAPAY_LINK = FlowDefinition(
    name="astrapay_link",
    description="AstraPay account link (linkEnable.do) for a customer without one",
    wallets=(Wallet.ASTRAPAY,),
    initial=S.LINK_REQUESTED,
    actors=(
        A.MERCHANT,
        A.PROVIDER_RESPONSE,
        A.BROWSER_CALLBACK,
        A.PROVIDER_NOTIFICATION,
        A.TIMER,
        A.OPERATOR,
    ),
    states=(
        _pending(S.LINK_REQUESTED, StateKind.START, 20, "linkEnable form handed to the browser"),
        _pending(
            S.PARTNER_REDIRECT_RECEIVED, StateKind.IN_PROGRESS, 5, "NICEPAY sent AstraPay's page"
        ),
        _pending(S.REGISTRATION_PAGE_SHOWN, StateKind.WAITING_CUSTOMER, 15, "AstraPay login shown"),
        _pending(S.CUSTOMER_REGISTERING, StateKind.WAITING_CUSTOMER, 15, "customer signing in"),
        StateSpec(
            S.MANDATE_MISSING,
            StateKind.IN_PROGRESS,
            deadline=Deadline(timedelta(hours=24), E.FAIL_LINK),
            description="link confirmed but no mandateID found: needs an operator",
        ),
        StateSpec(S.LINKED, StateKind.SUCCEEDED, final=True, description="mandate stored"),
        StateSpec(S.LINK_FAILED, StateKind.FAILED, final=True),
        StateSpec(S.LINK_EXPIRED, StateKind.FAILED, final=True),
        StateSpec(S.UNLINKED, StateKind.REVERSED, final=True),
    ),
    transitions=(
        transition(
            E.RECEIVE_PARTNER_REDIRECT,
            S.LINK_REQUESTED,
            S.PARTNER_REDIRECT_RECEIVED,
            A.PROVIDER_RESPONSE,
        ),
        transition(
            E.SHOW_REGISTRATION_PAGE,
            S.PARTNER_REDIRECT_RECEIVED,
            S.REGISTRATION_PAGE_SHOWN,
            A.MERCHANT,
            A.BROWSER_CALLBACK,
        ),
        transition(
            E.BEGIN_REGISTRATION,
            S.REGISTRATION_PAGE_SHOWN,
            S.CUSTOMER_REGISTERING,
            A.MERCHANT,
            A.BROWSER_CALLBACK,
        ),
        transition(
            E.CONFIRM_LINK,
            PENDING,
            S.LINKED,
            A.PROVIDER_NOTIFICATION,
            A.OPERATOR,
            binds=("mandate",),
        ),
        transition(
            E.CONFIRM_LINK_WITHOUT_MANDATE,
            PENDING,
            S.MANDATE_MISSING,
            A.PROVIDER_NOTIFICATION,
            A.OPERATOR,
        ),
        transition(E.ATTACH_MANDATE, S.MANDATE_MISSING, S.LINKED, A.OPERATOR, binds=("mandate",)),
        transition(
            E.FAIL_LINK,
            (*PENDING, S.MANDATE_MISSING),
            S.LINK_FAILED,
            A.PROVIDER_RESPONSE,
            A.PROVIDER_NOTIFICATION,
            A.TIMER,
            A.OPERATOR,
        ),
        transition(E.EXPIRE_LINK, PENDING, S.LINK_EXPIRED, A.TIMER, A.OPERATOR),
        transition(E.UNLINK, S.LINKED, S.UNLINKED, A.MERCHANT, A.OPERATOR, reversal=True),
    ),
)
