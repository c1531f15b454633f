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
    if _plain_text(redacted):  # already what the round trip would give back, and small
        return redacted
    try:
        text = _ENCODER(redacted)
    except (TypeError, ValueError) as exc:
        raise InvalidInstanceData(f"payload is not JSON data: {exc}") from None
    if len(text.encode()) > MAX_PAYLOAD_BYTES:
        raise InvalidInstanceData(f"payload exceeds {MAX_PAYLOAD_BYTES} bytes")
    if _is_flat(redacted):  # text keys, plain scalars: JSON would give back an equal copy
        return redacted
    cleaned: dict[str, Any] = json.loads(text)
    return cleaned


class UnreadablePayload(dict[str, Any]):
    """A stored payload that could not be read back: no fields, and ``problem`` says why.

    A damaged row (text that is not a JSON object) must not stop every reader of its log, so it
    reads as an empty payload that replay and the audit report name as damaged.
    """

    def __init__(self, problem: str) -> None:
        """Empty, with the reason the stored text could not be read."""
        super().__init__()
        self.problem = problem


def read_payload(text: str | None) -> dict[str, Any]:
    """A stored payload's JSON text as a dict; an :class:`UnreadablePayload` when it is not one."""
    try:
        value = json.loads(text or "")
    except (TypeError, ValueError) as exc:
        return UnreadablePayload(f"not JSON ({type(exc).__name__}: {str(exc)[:80]})")
    if not isinstance(value, dict):
        return UnreadablePayload(f"JSON {type(value).__name__}, not an object")
    return value


def dump_payload(payload: Mapping[str, Any]) -> str:
    """The payload as stored: compact, key-sorted JSON text."""
    return _dump_sorted(payload) if payload else "{}"


_dump_sorted = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), allow_nan=True, ensure_ascii=False, check_circular=False
).encode
"""Payloads are plain JSON data by now (see :func:`clean_payload`): no cycles."""


def is_secret_field(name: str) -> bool:
    """Whether a field of this name may hold a credential or a signature."""
    return _SECRET.search(name.lower()) is not None


_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, check_circular=False).encode
"""The round trip's encoder; what :func:`_redact` returns holds no cycles."""
_SECRET = re.compile("|".join(map(re.escape, _SECRET_MARKERS)))
_SCALARS = frozenset({str, int, float, bool, type(None)})
"""Exact types JSON reads back as themselves (a ``str`` or ``int`` subclass would not be)."""


def _plain_text(value: dict[str, Any]) -> bool:
    """Whether ``value`` maps ASCII text to ASCII text, booleans or nulls, far below the limit.

    Such a payload is JSON already: nothing in it can be refused or changed by a round trip, and
    its JSON text takes at most six bytes a character (an escaped control character).
    """
    characters = 2
    for key, item in value.items():
        if type(key) is not str or not key.isascii():
            return False
        if type(item) is str:
            if not item.isascii():
                return False
            characters += len(item)
        elif item is not None and type(item) is not bool:
            return False
        characters += len(key) + 8
    return characters * 6 <= MAX_PAYLOAD_BYTES


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
