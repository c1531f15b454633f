"""Parsing and verifying what NICEPAY and the customer's browser send us, before it is data.

A notification arrives documented as form-encoded, but no full e-wallet body has been published,
so a JSON body (by ``Content-Type``, or a body that starts with ``{``) and query-string
parameters are accepted too (reference §11), except its token: a query string ends up in access
logs and proxies' records, so a ``merchantToken`` there is refused. T3 covers only
``iMid + tXid + amt``: it proves the sender knows the merchant key, never the status, so a
verified notification only triggers an inquiry. The browser callback carries no signature at
all. Refusals are the typed errors of :mod:`adapters.errors`; their messages quote at most a short
piece of the input, token-shaped text blanked, since the input may hold a token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from pydantic import SecretStr

from adapters.errors import (
    BodyTooLarge,
    NotificationError,
    NotificationPayloadError,
    NotificationSignatureError,
    TokenInQuery,
)
from adapters.inbound.redact import redact, secrets_of, shown
from adapters.nicepay.tokens import link_enable_token, notification_token, token_matches

MAX_BODY_BYTES = 16 * 1024
"""Real notifications are well under 2 KiB; anything this large is refused unread."""


@dataclass(frozen=True)
class InboundRequest:
    """An HTTP request as any web framework can hand it over."""

    body: bytes = b""
    content_type: str = ""
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    client_ip: str | None = None


def refuse_token_in_query(request: InboundRequest) -> None:
    """Refuse a request whose query string carries a token, under any spelling of its name.

    Raises:
        TokenInQuery: it does; the caller must store the parameters with the token blanked.
    """
    names = {name.lower() for name, _ in parse_qsl(request.query, keep_blank_values=True)}
    if names & _TOKEN_NAMES:
        raise TokenInQuery("merchantToken must be sent in the body, never in the query string")


_TOKEN_NAMES = frozenset({"merchanttoken", "merchant_token"})


def parse_params(request: InboundRequest, *, max_bytes: int = MAX_BODY_BYTES) -> dict[str, str]:
    """The request's parameters from its body (form or JSON) and its query string.

    Body parameters win over query parameters of the same name. Every value comes back as a
    string, as NICEPAY sends them; JSON numbers keep their textual form.

    Raises:
        BodyTooLarge: the body is larger than ``max_bytes``.
        NotificationPayloadError: the body or query cannot be parsed, or repeats a field.
    """
    if len(request.body) > max_bytes:
        raise BodyTooLarge(f"body of {len(request.body)} bytes exceeds {max_bytes}")
    params = _parse_form(request.query, "query string") if request.query else {}
    if request.body.strip():
        params.update(_parse_body(request.body, request.content_type))
    return params


def _parse_body(body: bytes, content_type: str) -> dict[str, str]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise NotificationPayloadError("body is not UTF-8 text") from None
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json" or (media != _FORM and text.lstrip().startswith("{")):
        return _parse_json(text)
    return _parse_form(text, "form body")


_FORM = "application/x-www-form-urlencoded"


def _parse_json(text: str) -> dict[str, str]:
    try:
        data = json.loads(text, parse_float=_refuse_float, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:  # its message gives a position, never the text
        raise NotificationPayloadError(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise NotificationPayloadError("body is not valid JSON: nested too deeply") from None
    except ValueError as exc:
        raise NotificationPayloadError(str(exc)) from None
    if not isinstance(data, dict):
        raise NotificationPayloadError("JSON body must be an object")
    params = {}
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise NotificationPayloadError(
                f"field {shown(key, 40)} must be a string, not {type(value).__name__}"
            )
        params[key] = str(value)
    return params


def _refuse_float(text: str) -> float:
    raise ValueError(
        f"number {shown(text, 40)} has a fraction; NICEPAY amounts and codes are digit strings"
    )


def _refuse_constant(text: str) -> float:
    raise ValueError(f"{text} is not a JSON value NICEPAY sends")


def _parse_form(text: str, where: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True, max_num_fields=200)
    except ValueError as exc:  # its message quotes the field, which may be a token
        detail = "more than 200 fields" if "max" in str(exc).lower() else "a field without '='"
        raise NotificationPayloadError(f"{where} is not form-encoded: {detail}") from None
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise NotificationPayloadError(f"{where} repeats field {shown(key, 40)}")
        params[key] = value
    return params


def require(params: Mapping[str, str], *names: str) -> tuple[str, ...]:
    """The values of ``names``, each present and non-empty.

    Raises:
        NotificationPayloadError: a field is missing or empty.
    """
    missing = [name for name in names if not params.get(name)]
    if missing:
        raise NotificationPayloadError(f"missing fields: {', '.join(missing)}")
    return tuple(params[name] for name in names)


def verify_notification_token(
    params: Mapping[str, str], *, imid: str, stored_amount: str, merchant_key: SecretStr
) -> None:
    """Check T3 in constant time, failing closed.

    ``amt`` as received is hashed when present, else the stored amount (§11). A received ``amt``
    that differs from the stored one is refused even when its token verifies.

    Raises:
        NotificationSignatureError: no key configured, or the token is missing or wrong.
        NotificationPayloadError: the iMid or the amount does not match this merchant's payment.
    """
    if not merchant_key.get_secret_value():
        raise NotificationSignatureError("no merchant key configured: refusing all notifications")
    received_imid = params.get("iMid")
    if received_imid is not None and received_imid != imid:
        raise NotificationPayloadError("notification is for another merchant (iMid)")
    amount = params.get("amt") or stored_amount
    expected = notification_token(imid, params.get("tXid", ""), amount, merchant_key)
    if not token_matches(expected, params.get("merchantToken")):
        raise NotificationSignatureError("merchantToken does not verify")
    if amount != stored_amount:
        raise NotificationPayloadError(
            f"amount {amount!r} differs from the registered {stored_amount!r}"
        )


def verify_link_token(params: Mapping[str, str], *, imid: str, merchant_key: SecretStr) -> None:
    """Check an AstraPay link notification's token, T4 (it has no tXid or amount to sign).

    Raises:
        NotificationSignatureError: no key configured, or the token is missing or wrong.
        NotificationPayloadError: the iMid is another merchant's.
    """
    if not merchant_key.get_secret_value():
        raise NotificationSignatureError("no merchant key configured: refusing all notifications")
    if params.get("iMid", imid) != imid:
        raise NotificationPayloadError("notification is for another merchant (iMid)")
    expected = link_enable_token(
        imid, params.get("referenceNo", ""), params.get("billingPhone", ""), merchant_key
    )
    if not token_matches(expected, params.get("merchantToken")):
        raise NotificationSignatureError("merchantToken does not verify")


def parse_text(request: InboundRequest) -> dict[str, str]:
    """The request's parameters, refused when they cannot be stored as text.

    Raises:
        BodyTooLarge: the body or the query string is too large.
        NotificationPayloadError: they cannot be parsed, or hold a NUL or a lone surrogate.
    """
    if len(request.query) > MAX_BODY_BYTES:
        raise BodyTooLarge(
            f"query string of {len(request.query)} characters exceeds {MAX_BODY_BYTES}"
        )
    params = parse_params(request)
    for name, value in params.items():
        try:
            (name + value).encode("utf-8")
        except UnicodeEncodeError:
            raise NotificationPayloadError(f"field {shown(name)} is not valid text") from None
        if "\x00" in name or "\x00" in value:
            raise NotificationPayloadError(f"field {shown(name)} holds a NUL character")
    return params


def parsed_or_empty(request: InboundRequest) -> dict[str, str]:
    """What :func:`parse_text` makes of the request, or nothing when it refuses it."""
    try:
        return parse_text(request)
    except NotificationError:
        return {}


def raw_record(request: InboundRequest, params: Mapping[str, str]) -> dict[str, str]:
    """The notification as it arrived, for the log: body and headers, tokens blanked out."""
    secrets = secrets_of("", params)
    body = redact(request.body.decode("utf-8", errors="replace"), secrets)
    headers = {
        name: redact(request.headers[name], secrets)
        for name in _KEPT_HEADERS
        if name in request.headers
    }
    query = redact(request.query, secrets)
    return {"body": body, "query": query, **headers, "client_ip": request.client_ip or ""}


_KEPT_HEADERS = ("content-type", "user-agent", "x-forwarded-for")
