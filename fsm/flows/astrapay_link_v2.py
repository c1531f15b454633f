"""Version 2 of the AstraPay account link: the merchant confirms the registration.

Once the link is ``linked``, the merchant tells the customer the account has been registered and
records it with ``confirm_registration`` (``registration_confirmed``), from which the account may
still be unlinked. Version 1's unfinished links move to the same state here.
"""

from __future__ import annotations

from fsm.definition import Actor, StateKind, StateSpec, transition
from fsm.flows._follow_up import same_states, with_follow_ups
from fsm.flows.astrapay_link import ASTRAPAY_LINK, LinkEvent, LinkState

ASTRAPAY_LINK_V2 = with_follow_ups(
    ASTRAPAY_LINK,
    LinkEvent.CONFIRM_REGISTRATION,
    {
        LinkState.LINKED: StateSpec(
            LinkState.REGISTRATION_CONFIRMED,
            StateKind.SUCCEEDED,
            final=True,
            description="the merchant told the customer the account has been registered",
        )
    },
    extra=(
        transition(
            LinkEvent.UNLINK,
            LinkState.REGISTRATION_CONFIRMED,
            LinkState.UNLINKED,
            Actor.MERCHANT,
            Actor.OPERATOR,
            reversal=True,
        ),
    ),
)
ASTRAPAY_LINK_TO_V2 = same_states(ASTRAPAY_LINK, ASTRAPAY_LINK_V2)

__all__ = ["ASTRAPAY_LINK_TO_V2", "ASTRAPAY_LINK_V2"]
