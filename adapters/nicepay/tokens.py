"""NICEPAY's ``merchantToken`` formulas and ``timeStamp`` format, each in one small function.

Every token is the lowercase hex SHA-256 of the plain concatenation of exactly the strings sent on
the wire. T4 and T5 (AstraPay) come from single documentation pages that no SDK implements, so a
correction to either is meant to be a one-line change here.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from zoneinfo import ZoneInfo

from pydantic import SecretStr

WIB = ZoneInfo("Asia/Jakarta")


def merchant_token(*parts: str) -> str:
    """Lowercase hex SHA-256 of the concatenated ``parts``, encoded as UTF-8."""
    return hashlib.sha256("".join(parts).encode("utf-8")).hexdigest()


def registration_token(
    timestamp: str, imid: str, reference_no: str, amount: str, key: SecretStr
) -> str:
    """T1 for registration, the payment step and inquiry: timeStamp+iMid+referenceNo+amt+key."""
    return merchant_token(timestamp, imid, reference_no, amount, key.get_secret_value())


def cancel_token(timestamp: str, imid: str, tx_id: str, amount: str, key: SecretStr) -> str:
    """T2 for cancel: timeStamp+iMid+tXid+amt+key, where amt is the amount cancelled."""
    return merchant_token(timestamp, imid, tx_id, amount, key.get_secret_value())


def notification_token(imid: str, tx_id: str, amount: str, key: SecretStr) -> str:
    """T3, which a notification carries: iMid+tXid+amt+key (no timeStamp)."""
    return merchant_token(imid, tx_id, amount, key.get_secret_value())


def link_enable_token(imid: str, reference_no: str, billing_phone: str, key: SecretStr) -> str:
    """T4 for AstraPay ``linkEnable.do``: iMid+referenceNo+billingPhone+key (unconfirmed)."""
    return merchant_token(imid, reference_no, billing_phone, key.get_secret_value())


def link_initiate_token(imid: str, reference_no: str, amount: str, key: SecretStr) -> str:
    """T5 for AstraPay ``linkInitiate.do``: iMid+referenceNo+amt+key (unconfirmed)."""
    return merchant_token(imid, reference_no, amount, key.get_secret_value())


def token_matches(expected: str, received: str | None) -> bool:
    """Constant-time comparison of a received token with the expected one."""
    return hmac.compare_digest(expected.encode(), (received or "").lower().encode())


def nicepay_timestamp(moment: datetime) -> str:
    """``YYYYMMDDHHMMSS`` in Asia/Jakarta, whatever the host's zone; ``moment`` must be aware."""
    if moment.tzinfo is None:
        raise ValueError("a NICEPAY timestamp needs an aware datetime")
    return moment.astimezone(WIB).strftime("%Y%m%d%H%M%S")
