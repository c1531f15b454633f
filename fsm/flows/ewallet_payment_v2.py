"""Version 2 of the e-wallet payment: the merchant, not the timer, confirms the outcome.

``paid`` is final and waits for no timer; the merchant tells the customer and records it with
``confirm_order`` (``order_confirmed``), as it does after a failure (``failure_confirmed``) or an
expiry (``expiry_confirmed``). Version 1's in-flight payments move to the same state here.
"""

from __future__ import annotations

from fsm.flows._follow_up import confirmed_payment
from fsm.flows.ewallet_payment import EWALLET_PAYMENT, PaymentEvent, PaymentState

EWALLET_PAYMENT_V2, EWALLET_PAYMENT_TO_V2 = confirmed_payment(
    EWALLET_PAYMENT, PaymentEvent.CONFIRM_ORDER, PaymentState.ORDER_CONFIRMED
)

__all__ = ["EWALLET_PAYMENT_TO_V2", "EWALLET_PAYMENT_V2"]
