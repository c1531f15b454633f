"""Events to the merchant's own HTTP services, signed, and the receiver's check of the signature.

Each event is POSTed as its JSON (:meth:`~fsm.events.Event.to_json`) with the header::

    Ewallet-Signature: t=1764730800,v1=5257a869e7ec...(64 hex digits)

``t`` is the Unix time of signing and ``v1`` the hex HMAC-SHA256, under the shared secret, of
``t``, a full stop and the body's bytes. A receiver checks it with :func:`verify_webhook`, which
also refuses a signature older (or newer) than its tolerance, so a captured request cannot be
replayed later; within the tolerance a replay carries an event id the receiver has already seen.
Any 2xx answer counts as delivered; anything else, or no answer, is a failed attempt.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx

from adapters.errors import DeliveryFailed, WebhookSignatureError
from fsm.clock import Clock, SystemClock, require_aware
from fsm.errors import ConfigurationError
from fsm.events import Event

SIGNATURE_HEADER = "Ewallet-Signature"
DEFAULT_TOLERANCE = timedelta(minutes=5)


def sign_webhook(body: bytes, secret: str, timestamp: int) -> str:
    """The ``Ewallet-Signature`` value for ``body`` signed at ``timestamp`` (Unix seconds)."""
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def verify_webhook(
    body: bytes,
    header: str | None,
    secret: str,
    *,
    tolerance: timedelta = DEFAULT_TOLERANCE,
    now: datetime | None = None,
) -> Event:
    """The event in ``body`` once its ``Ewallet-Signature`` header verifies under ``secret``.

    Any of several ``v1`` values may match (a sender rotating its secret signs with both).

    Raises:
        WebhookSignatureError: the header is missing or malformed, no signature matches, or it
            was made further than ``tolerance`` from ``now``.
        InvalidInstanceData: it verifies, but the body is not an event.
        ConfigurationError: ``secret`` is empty.
    """
    if not secret:  # an unset secret would verify what anyone signed with none
        raise ConfigurationError("verifying a webhook needs its signing secret")
    timestamp, signatures = _parsed(header)
    moment = require_aware(now) if now is not None else SystemClock().now()
    if abs(moment.timestamp() - timestamp) > tolerance.total_seconds():
        raise WebhookSignatureError("the signature's time is outside the tolerance")
    expected = _digest(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, given) for given in signatures):
        raise WebhookSignatureError("no signature matches the body")
    return Event.from_json(body)


def _parsed(header: str | None) -> tuple[int, list[str]]:
    if not header:
        raise WebhookSignatureError(f"no {SIGNATURE_HEADER} header")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise WebhookSignatureError(f"a malformed {SIGNATURE_HEADER} header")
    return timestamp, signatures


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


class WebhookSink:
    """POSTs each event, signed, to one URL of the merchant's."""

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        timeout: float = 10.0,
        client: httpx.Client | None = None,
        clock: Clock | None = None,
    ) -> None:
        """Send to ``url``, signing with ``secret``.

        Raises:
            ConfigurationError: the URL is not http(s) or the secret is empty.
        """
        try:  # the URL may hold a token: no error may quote it
            parts = urlsplit(url)
            port = parts.port
            if parts.scheme not in {"http", "https"} or not parts.hostname:
                raise ValueError
        except ValueError:
            raise ConfigurationError(
                "a webhook URL must be http:// or https:// with a host and a numeric port"
            ) from None
        if not secret:
            raise ConfigurationError("a webhook needs a signing secret")
        self._url = url
        self._secret = secret
        self._client = client or httpx.Client(timeout=timeout)
        self._clock = clock or SystemClock()
        self.name = f"webhook:{parts.hostname}" + (f":{port}" if port else "")

    def deliver(self, event: Event) -> None:
        """POST the event; a 2xx answer is a delivery.

        Raises:
            DeliveryFailed: no answer, or another status.
        """
        body = event.to_json().encode()
        signature = sign_webhook(body, self._secret, int(self._clock.now().timestamp()))
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature,
            "Ewallet-Event-Id": event.id,
            "Ewallet-Event-Type": event.type,
        }
        try:
            answer = self._client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as error:
            raise DeliveryFailed(f"no answer: {type(error).__name__}", sink=self.name) from None
        if not answer.is_success:
            raise DeliveryFailed(f"answered {answer.status_code}", sink=self.name)

    def close(self) -> None:
        """Close the HTTP client's connections."""
        self._client.close()


__all__ = [
    "DEFAULT_TOLERANCE",
    "SIGNATURE_HEADER",
    "WebhookSink",
    "sign_webhook",
    "verify_webhook",
]
