"""Event payloads: made JSON-exact and stripped of secrets before anything stores them."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
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
    if not payload:
        return {}
    redacted: dict[str, Any] = _redact(payload)
    try:
        text = _ENCODER.encode(redacted)
    except (TypeError, ValueError) as exc:
        raise InvalidInstanceData(f"payload is not JSON data: {exc}") from None
    if len(text.encode()) > MAX_PAYLOAD_BYTES:
        raise InvalidInstanceData(f"payload exceeds {MAX_PAYLOAD_BYTES} bytes")
    if _is_flat(redacted):  # text keys, plain scalars: JSON would give back an equal copy
        return redacted
    cleaned: dict[str, Any] = json.loads(text)
    return cleaned


def is_secret_field(name: str) -> bool:
    """Whether a field of this name may hold a credential or a signature."""
    return _SECRET.search(name.lower()) is not None


_ENCODER = json.JSONEncoder(allow_nan=False, ensure_ascii=False)
"""Built once: ``json.dumps`` with options builds an encoder on every call."""
_SECRET = re.compile("|".join(map(re.escape, _SECRET_MARKERS)))
_SCALARS = frozenset({str, int, float, bool, type(None)})
"""Exact types JSON reads back as themselves (a ``str`` or ``int`` subclass would not be)."""


def _is_flat(value: dict[str, Any]) -> bool:
    return all(type(key) is str and type(item) in _SCALARS for key, item in value.items())


def _redact(value: Any) -> Any:
    """A copy of ``value`` with secret-looking fields redacted; mappings become new dicts."""
    if type(value) in _SCALARS:
        return value
    if isinstance(value, Mapping):
        return {
            key: REDACTED if isinstance(key, str) and _secret_name(key) else _redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(item) for item in value]
    return value


@lru_cache(maxsize=4096)
def _secret_name(name: str) -> bool:
    """:func:`is_secret_field`, remembered: payloads repeat a small set of field names."""
    return is_secret_field(name)
