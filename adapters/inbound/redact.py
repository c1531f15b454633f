"""Keeping secrets and bulk out of what the inbound endpoints store, log and answer.

A token is blanked by value where the parsed parameters name it, and by shape where nothing
does (a body that failed to parse, an exception's message): any run of 64 or more hex digits
with a letter among them (T3 and T4 are SHA-256 hex) and whatever follows a ``merchantToken``
or ``merchantKey`` label.
What nobody has authenticated is stored compactly: NICEPAY's documented fields first, each cut
to a documented field's size, then other fields while a small budget lasts, and a note of what
was left out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from fsm import REDACTED

COMPACT_BYTES = 4096
"""The most an unauthenticated request's parameters take when stored, as JSON."""
STORED_BYTES = 48 * 1024
"""A verified notification larger than this (as JSON) keeps only its documented fields."""
DOCUMENTED_FIELDS = frozenset(
    [
        "tXid",
        "referenceNo",
        "payMethod",
        "amt",
        "iMid",
        "currency",
        "goodsNm",
        "billingNm",
        "billingPhone",
        "transDt",
        "transTm",
        "matchCl",
        "status",
        "mitraCd",
        "payNo",
        "payValidDt",
        "payValidTm",
        "receiptCode",
        "mRefNo",
        "depositDt",
        "depositTm",
        "resultCd",
        "resultMsg",
        "merchantToken",
        "tx_id",
    ]
)
FIELD_LIMIT = 255  # the longest documented field, AN 255 (merchantToken)
_NAME_LIMIT = 64
_NOTE_BYTES = 96
"""Kept back from the budget for the braces and the note of what was left out."""
_SECRET_MIN = 8  # a shorter "secret" would blank ordinary text
_HEX_RUN = re.compile(r"[0-9A-Fa-f]{64,}")
_LABELLED = re.compile(r"(?i)(merchant_?(?:token|key)\W{0,4}?(?:[:=]|%3d)\W{0,3})[^\s\"'&,;}\])]+")


def secrets_of(merchant_key: str, params: Mapping[str, Any] | None = None) -> list[str]:
    """The values to blank: the merchant key, and the token ``params`` carry (if any)."""
    token = params.get("merchantToken") if params else None
    return [s for s in (merchant_key, token) if isinstance(s, str) and len(s) >= _SECRET_MIN]


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """``text`` with ``secrets``, token-shaped hex runs and labelled token values blanked.

    A message may show a value cut short, so a secret's start is blanked too, from its first
    :data:`_SECRET_MIN` characters on for as long as the text goes on to match it.
    """
    for secret in secrets:
        text = _blank_prefixes(text, secret)
    text = _HEX_RUN.sub(_blank_unless_digits, text)
    return _LABELLED.sub(lambda match: match.group(1) + REDACTED, text)


def _blank_unless_digits(match: re.Match[str]) -> str:
    run = match.group(0)
    return run if run.isdigit() else REDACTED  # long digit runs are amounts or ids, not hashes


def _blank_prefixes(text: str, secret: str) -> str:
    start, head = 0, secret[:_SECRET_MIN]
    while (found := text.find(head, start)) >= 0:
        end = found + len(head)
        while end < len(text) and end - found < len(secret) and text[end] == secret[end - found]:
            end += 1
        text = text[:found] + REDACTED + text[end:]
        start = found + len(REDACTED)
    return text


def redact_all(params: Mapping[str, Any], secrets: Sequence[str]) -> dict[str, Any]:
    """``params`` with :func:`redact` applied to every name and text value, nested ones too."""

    def blank(value: Any) -> Any:
        if isinstance(value, str):
            return redact(value, secrets)
        if isinstance(value, Mapping):
            return {blank(k): blank(v) for k, v in value.items()}
        return value

    return {blank(k): blank(v) for k, v in params.items()}


def compact(params: Mapping[str, Any], kept: Collection[str] = DOCUMENTED_FIELDS) -> dict[str, Any]:
    """At most :data:`COMPACT_BYTES` of ``params``: ``kept`` fields first, long values cut.

    Fields beyond the budget are left out and counted under ``omitted``.
    """
    stored: dict[str, Any] = {}
    used, left_out, left_bytes = _NOTE_BYTES, 0, 0
    for name, value in sorted(params.items(), key=lambda item: item[0] not in kept):
        entry = {_cut(str(name), _NAME_LIMIT): _cut(value, FIELD_LIMIT)}
        size = len(json.dumps(entry))  # as stored: ASCII, other characters as \u escapes
        if used + size > COMPACT_BYTES:
            left_out += 1
            left_bytes += len(json.dumps({name: value}, default=str))
            continue
        stored.update(entry)
        used += size
    if left_out:
        stored["omitted"] = f"{left_out} fields of {left_bytes} bytes: too large to store"
    return stored


def fit(payload: Mapping[str, Any], kept: Collection[str] = DOCUMENTED_FIELDS) -> dict[str, Any]:
    """``payload``, or only its ``kept`` short text fields when it is too large to store whole."""
    size = len(json.dumps(payload, ensure_ascii=False).encode())
    if size <= STORED_BYTES:
        return dict(payload)
    short = {
        name: value
        for name, value in payload.items()
        if name in kept and isinstance(value, str) and len(value) <= FIELD_LIMIT
    }
    return {**short, "omitted": f"parameters of {size} bytes, too large to store whole"}


def _cut(value: Any, limit: int) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]}... ({len(value)} characters)"
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    text = json.dumps(value, ensure_ascii=False, default=str)
    return value if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def shown(value: str | None, limit: int = 64) -> str:
    """``value`` quoted for a message, token-shaped text blanked, cut to ``limit`` characters."""
    if value is None:
        return repr(value)
    value = redact(value)
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"
