"""What the merchant's status page tells a customer coming back from the wallet."""

from __future__ import annotations

import re


def shown_outcome(page: str | None) -> str:
    """The outcome a status page shows (its body's ``data-outcome``)."""
    found = re.search(r'<body data-outcome="([a-z]+)">', page or "")
    assert found is not None, f"not a status page: {page!r}"
    return found.group(1)
