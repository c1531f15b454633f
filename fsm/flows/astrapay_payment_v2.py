"""Version 2 of the AstraPay payment: the merchant, not the timer, updates the customer.

``paid`` is final and waits for no timer; the merchant tells the customer and records it with
``update_customer`` (``customer_updated``), as it does after a failure (``failure_confirmed``)
or an expiry (``expiry_confirmed``). Version 1's in-flight payments move to the same state here.
"""

from __future__ import annotations

from fsm.flows._follow_up import confirmed_payment
from fsm.flows.astrapay_payment import ASTRAPAY_PAYMENT
from fsm.flows.astrapay_payment import AstrapayPaymentEvent as Event
from fsm.flows.astrapay_payment import AstrapayPaymentState as State

ASTRAPAY_PAYMENT_V2, ASTRAPAY_PAYMENT_TO_V2 = confirmed_payment(
    ASTRAPAY_PAYMENT, Event.UPDATE_CUSTOMER, State.CUSTOMER_UPDATED
)

__all__ = ["ASTRAPAY_PAYMENT_TO_V2", "ASTRAPAY_PAYMENT_V2"]
