"""How a link and a seal are computed, for the stores that write them and the verifier alike.

A step's link is the MAC of the previous link (empty for the first step) followed by the step's
canonical content; the instance's seal is the MAC of its latest link, a ``|`` and the instance's
canonical content. Links are hex and content starts with ``[``, so the two never collide. The
MAC is HMAC-SHA256 under the key the row names, or plain SHA-256 for key id ``sha256``.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Any

from fsm.chain.content import LINK_FIELDS, SEAL_FIELDS, canonical
from fsm.chain.keys import HASH_ONLY, AuditKeys, hash_only
from fsm.model import Instance, TransitionRecord


class Chain:
    """Links and seals under one set of audit keys (or none: the plain hash chain)."""

    __slots__ = ("_keys", "key_id")

    def __init__(self, keys: AuditKeys | None = None) -> None:
        """Sign with the first of ``keys``; without keys, hash only."""
        self._keys = keys
        self.key_id: str = HASH_ONLY if keys is None else keys.signing_id
        """The id stored beside every link and seal this chain writes."""

    @property
    def keys(self) -> AuditKeys | None:
        """The audit keys, if any."""
        return self._keys

    def can_check(self, key_id: str) -> bool:
        """Whether a link made under ``key_id`` can be recomputed here."""
        return key_id == HASH_ONLY or (self._keys is not None and self._keys.knows(key_id))

    def mac(self, key_id: str, message: bytes) -> str:
        """The MAC of ``message`` under ``key_id``.

        Raises:
            KeyError: ``key_id`` is not one :meth:`can_check` allows.
        """
        if key_id == HASH_ONLY:
            return hash_only(message)
        if self._keys is None:
            raise KeyError(key_id)
        return self._keys.mac(key_id, message)

    def link(self, previous: str, values: Sequence[Any], key_id: str | None = None) -> str:
        """The link of a step whose :data:`LINK_FIELDS` are ``values``, after ``previous``."""
        return self.mac(key_id or self.key_id, previous.encode() + canonical(values))

    def seal(self, latest: str, values: Sequence[Any], key_id: str | None = None) -> str:
        """The seal of an instance whose :data:`SEAL_FIELDS` are ``values``, at link ``latest``."""
        return self.mac(key_id or self.key_id, latest.encode() + b"|" + canonical(values))

    def __repr__(self) -> str:
        return f"Chain(key_id={self.key_id!r})"


_LINKED = attrgetter(*LINK_FIELDS)
_PAYLOAD_AT = LINK_FIELDS.index("payload")
_SEALED = attrgetter(*SEAL_FIELDS)


def record_values(record: TransitionRecord, payload: str) -> tuple[Any, ...]:
    """A record's :data:`LINK_FIELDS`, its payload as the text stored for it."""
    values: tuple[Any, ...] = _LINKED(record)
    return (*values[:_PAYLOAD_AT], payload, *values[_PAYLOAD_AT + 1 :])


def instance_values(instance: Instance) -> tuple[Any, ...]:
    """An instance's :data:`SEAL_FIELDS`."""
    values: tuple[Any, ...] = _SEALED(instance)
    return values


__all__ = ["Chain", "instance_values", "record_values"]
