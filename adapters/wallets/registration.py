"""Registration that survives a lost answer, without ever looping (reference §15, pitfall 7).

A registration whose answer was lost (timeout, 5xx, dropped connection, garbled body) may have
succeeded at NICEPAY without us learning its ``tXid``. The recovery is fixed and bounded:

1. Send once. A success returns; a non-retryable refusal is raised as it is.
2. After a retryable failure, send once more with the **same** ``referenceNo``. If NICEPAY never
   saw the first attempt, this simply registers it.
3. If that answers ``9009`` (duplicate), the first attempt did register, but its ``tXid`` is lost
   and the customer cannot pay it without one, so abandon it and register once more under
   ``<referenceNo>-<suffix>``. The caller maps the returned ``referenceNo`` back to its order.

Any other failure of step 2 or 3 is raised: at most three sends, never a loop.

A ``9009`` on the very first attempt is raised too, not renamed: nothing we sent went unanswered,
so the duplicate comes from an earlier registration this call knows nothing about (a crashed
process, a reused order ID, a NICEPAY-side duplicate-check setting). Whether that registration
should be inquired, abandoned or renamed is the caller's decision, not a blind retry's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from adapters.errors import DuplicateReference, ProviderError
from adapters.nicepay.client import NicepayClient
from adapters.nicepay.messages import RegistrationRequest
from adapters.nicepay.responses import RegistrationResponse

logger = logging.getLogger(__name__)


def register_with_recovery(
    client: NicepayClient,
    request: RegistrationRequest,
    *,
    suffix: Callable[[], str],
) -> tuple[RegistrationResponse, str]:
    """Register ``request``, recovering from a lost answer as pitfall 7 prescribes.

    Args:
        client: The client that sends each attempt (once each; it never retries registration).
        request: The registration; its ``reference_no`` is the order ID.
        suffix: Makes the suffix of a replacement ``referenceNo`` (e.g. a WIB timestamp or a
            short random token); called at most once. The result must fit 40 characters.

    Returns:
        The response and the ``referenceNo`` it was registered under: ``request.reference_no``
        or ``f"{request.reference_no}-{suffix()}"``.

    Raises:
        DuplicateReference: the first attempt answered ``9009``, or so did the renamed one.
        ProviderError: a non-retryable first failure, or any failure of the second or third
            send.
        pydantic.ValidationError: the suffixed ``referenceNo`` is longer than 40 characters.
    """
    order_ref = request.reference_no
    try:
        return client.register(request), order_ref
    except ProviderError as exc:
        if not exc.retryable:
            raise
        logger.warning(
            "registration answer lost; resending once with the same referenceNo=%s (%s)",
            order_ref,
            type(exc).__name__,
            extra={"reference_no": order_ref, "error": type(exc).__name__},
        )
    try:
        return client.register(request), order_ref
    except DuplicateReference:
        pass  # the first attempt registered, and its tXid is lost with its answer
    renamed = request.with_reference_no(f"{order_ref}-{suffix()}")
    logger.warning(
        "referenceNo=%s registered without a known tXid; registering again as %s",
        order_ref,
        renamed.reference_no,
        extra={"reference_no": order_ref, "new_reference_no": renamed.reference_no},
    )
    return client.register(renamed), renamed.reference_no
