"""Audit keys: the secrets the chain is keyed with, held by the service outside the database.

``EWALLET_FSM_AUDIT_KEY="id:secret[,id:secret...]"``: the first key signs new rows, the others
only verify rows signed before a rotation. Every row stores the id of the key that signed it,
never the key. Without a key the chain is a plain SHA-256 hash chain (key id ``sha256``): it
catches accidental corruption and careless edits, not someone who recomputes it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping

from fsm.errors import ConfigurationError

ENV_VAR = "EWALLET_FSM_AUDIT_KEY"
"""Where :meth:`AuditKeys.from_env` reads the keys."""

HASH_ONLY = "sha256"
"""The key id of a link made without a key: a plain hash chain."""

_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_MIN_SECRET = 16


def written_keys(text: str) -> list[tuple[str, str, str]]:
    """The parts of ``id:secret[,id:secret...]`` as written, unchecked: ``(id, ":", secret)``
    each (the separator empty where a part has none); for :meth:`AuditKeys.parse`, and for
    blanking the secrets in log lines whatever the text holds."""
    return [part.strip().partition(":") for part in text.split(",")]


class AuditKeys:
    """The audit keys by id; the first signs, every one verifies. Its repr shows ids only."""

    __slots__ = ("_secrets", "signing_id")

    def __init__(self, *keys: tuple[str, str | bytes]) -> None:
        """Keys as ``(id, secret)``, the signing key first.

        Raises:
            ConfigurationError: no key, a malformed or repeated id, the reserved id ``sha256``,
                or a secret under 16 bytes (the message names the id, never the secret).
        """
        if not keys:
            raise ConfigurationError("an audit key set needs at least one key")
        secrets: dict[str, bytes] = {}
        for key_id, secret in keys:
            raw = secret.encode() if isinstance(secret, str) else bytes(secret)
            secrets[_checked_id(key_id, secrets)] = _checked_secret(key_id, raw)
        self._secrets: Mapping[str, bytes] = secrets
        self.signing_id: str = keys[0][0]

    @classmethod
    def parse(cls, text: str) -> AuditKeys:
        """Keys written ``id:secret[,id:secret...]``, the signing key first.

        Raises:
            ConfigurationError: the text is malformed (the message never repeats a secret).
        """
        pairs = []
        for number, (key_id, colon, secret) in enumerate(written_keys(text), start=1):
            if not colon or not secret:
                raise ConfigurationError(f"audit key {number} is not written id:secret")
            pairs.append((key_id, secret))
        return cls(*pairs)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AuditKeys | None:
        """The keys in ``$EWALLET_FSM_AUDIT_KEY``; ``None`` when it is unset or empty."""
        text = (os.environ if environ is None else environ).get(ENV_VAR, "").strip()
        return cls.parse(text) if text else None

    @property
    def ids(self) -> tuple[str, ...]:
        """Every key id, the signing one first."""
        return tuple(self._secrets)

    def knows(self, key_id: str) -> bool:
        """Whether ``key_id`` names one of these keys."""
        return key_id in self._secrets

    def mac(self, key_id: str, message: bytes) -> str:
        """HMAC-SHA256 of ``message`` under the key ``key_id``, in hex."""
        return hmac.digest(self._secrets[key_id], message, "sha256").hex()

    def __repr__(self) -> str:
        return f"AuditKeys(ids={list(self._secrets)!r})"


def hash_only(message: bytes) -> str:
    """SHA-256 of ``message`` in hex: the link of a chain kept without a key."""
    return hashlib.sha256(message).hexdigest()


def _checked_id(key_id: str, taken: Mapping[str, bytes]) -> str:
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
        raise ConfigurationError("an audit key id is 1 to 32 letters, digits, '_', '.' or '-'")
    if key_id == HASH_ONLY:
        raise ConfigurationError(f"audit key id {HASH_ONLY!r} is reserved for the unkeyed chain")
    if key_id in taken:
        raise ConfigurationError(f"audit key id {key_id!r} is given twice")
    return key_id


def _checked_secret(key_id: str, secret: bytes) -> bytes:
    if len(secret) < _MIN_SECRET:
        raise ConfigurationError(f"audit key {key_id!r} is shorter than {_MIN_SECRET} bytes")
    return secret


__all__ = ["ENV_VAR", "HASH_ONLY", "AuditKeys", "hash_only", "written_keys"]
