"""Event payloads: made JSON-exact and stripped of secrets before anything stores them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fsm.errors import InvalidInstanceData

REDACTED = "[redacted]"
_SECRET_MARKERS = (
    "merchantkey",
    "merchant_key",
    "merchanttoken",
    "merchant_token",
    "secret",
    "password",
    "signature",
    "apikey",
    "api_key",
)
MAX_PAYLOAD_BYTES = 64 * 1024


def clean_payload(payload: Mapping[str, Any] | None) -> dict[str, Any]:
    """A JSON round-tripped copy of ``payload`` with secret-looking fields redacted.

    Raises:
        InvalidInstanceData: the payload is not a mapping of JSON values, or is too large.
    """
    if payload is None:
        return {}
    if not isinstance(payload, Mapping):
        raise InvalidInstanceData(f"payload must be a mapping, not {type(payload).__name__}")
    try:
        text = json.dumps(_redact(payload), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInstanceData(f"payload is not JSON data: {exc}") from None
    if len(text.encode()) > MAX_PAYLOAD_BYTES:
        raise InvalidInstanceData(f"payload exceeds {MAX_PAYLOAD_BYTES} bytes")
    cleaned: dict[str, Any] = json.loads(text)
    return cleaned


def is_secret_field(name: str) -> bool:
    """Whether a field of this name may hold a credential or a signature."""
    lowered = name.lower()
    return any(marker in lowered for marker in _SECRET_MARKERS)


def _redact(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            key: REDACTED if isinstance(key, str) and is_secret_field(key) else _redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(item) for item in value]
    return value
