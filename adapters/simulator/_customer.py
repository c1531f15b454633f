"""Scripted customers: what the payer does when the wallet asks, keyed by referenceNo or phone."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from adapters.simulator._config import CustomerAction


@dataclass(frozen=True)
class Script:
    """One customer's behaviour: an action, taken after ``delay`` seconds."""

    action: CustomerAction
    delay: float = 0.0


class CustomerScripts:
    """Scripts by ``referenceNo`` and by ``billingPhone``; a referenceNo script wins."""

    def __init__(self) -> None:
        """No scripts yet: every customer follows the defaults."""
        self._lock = threading.Lock()
        self._by_reference: dict[str, Script] = {}
        self._by_phone: dict[str, Script] = {}

    def add(
        self,
        script: Script,
        *,
        reference_no: str | None = None,
        billing_phone: str | None = None,
    ) -> None:
        """Script the customer of ``reference_no`` or of ``billing_phone`` (the last one wins).

        Raises:
            ValueError: neither or both keys were given.
        """
        if (reference_no is None) == (billing_phone is None):
            raise ValueError("give exactly one of reference_no and billing_phone")
        with self._lock:
            if reference_no is not None:
                self._by_reference[reference_no] = script
            elif billing_phone is not None:
                self._by_phone[billing_phone] = script

    def lookup(self, reference_no: str, billing_phone: str) -> Script | None:
        """The script that applies to a transaction, if any."""
        with self._lock:
            return self._by_reference.get(reference_no) or self._by_phone.get(billing_phone)
