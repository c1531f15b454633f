"""A second version of the e-wallet payment flow, shipped as a service would ship one.

It is built on the first versions of the built-in flows alone (:data:`FIRST_VERSIONS`), as if
the library's own second versions had not shipped, so the tests see one step from v1 to v2.

Version 2 gives the customer longer at checkout (a changed deadline) and adds a state: a
reminder sent while the checkout waits. :data:`TO_V2` moves in-flight version 1 payments to the
same state in version 2. :data:`CATALOG` is every built-in flow plus this version, for
``Engine(store, flows=CATALOG)`` and for the command's ``--flows tests.flow_versions:CATALOG``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from fsm.definition import (
    Actor,
    Deadline,
    FlowCatalog,
    FlowMigration,
    StateKind,
    StateSpec,
    TransitionSpec,
    transition,
)
from fsm.flows import EWALLET_PAYMENT, RELEASED

FIRST_VERSIONS = tuple(flow for flow in RELEASED if flow.version == 1)
"""Version 1 of every built-in flow."""
FIRST = FlowCatalog(FIRST_VERSIONS)
"""The built-in flows before any second version shipped."""

REMINDED = "checkout_reminded"
CHECKOUT_WINDOW_V2 = timedelta(minutes=20)
"""Version 1 gives the customer 15 minutes at checkout."""


def _state(spec: StateSpec) -> StateSpec:
    if spec.name != "checkout_requested" or spec.deadline is None:
        return spec
    return replace(spec, deadline=replace(spec.deadline, after=CHECKOUT_WINDOW_V2))


def _transition(spec: TransitionSpec) -> TransitionSpec:
    if spec.event not in {"send_registration", "abandon_checkout"}:
        return spec
    return replace(spec, sources=spec.sources | {REMINDED})


EWALLET_PAYMENT_V2 = replace(
    EWALLET_PAYMENT,
    version=2,
    states=(
        *map(_state, EWALLET_PAYMENT.states),
        StateSpec(
            REMINDED,
            StateKind.WAITING_CUSTOMER,
            deadline=Deadline(timedelta(minutes=10), "abandon_checkout"),
            description="the customer was reminded to finish checking out",
        ),
    ),
    transitions=(
        *map(_transition, EWALLET_PAYMENT.transitions),
        transition("remind_customer", "checkout_requested", REMINDED, Actor.MERCHANT),
    ),
)

TO_V2 = FlowMigration(
    "ewallet_payment",
    1,
    {state.name: state.name for state in EWALLET_PAYMENT.states if not state.final},
)

CATALOG = FlowCatalog((*FIRST_VERSIONS, EWALLET_PAYMENT_V2), (TO_V2,))

EDITED = FlowCatalog(
    (
        replace(EWALLET_PAYMENT, states=tuple(map(_state, EWALLET_PAYMENT.states))),
        *FIRST_VERSIONS[1:],
    )
)
"""The built-in flows with v1's checkout window changed in place, without a new version."""
