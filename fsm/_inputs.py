"""Input checks: what the engine refuses before anything reaches the database.

Each raises :class:`~fsm.errors.InvalidInstanceData` naming what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from fsm._payload import clean_payload
from fsm.definition import FlowDefinition
from fsm.errors import InvalidInstanceData
from fsm.model import FireRequest

_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_AMOUNT = re.compile(r"[0-9]{1,18}")
_CURRENCY = re.compile(r"[A-Z]{3}")
MAX_KEY_LENGTH = 200


def checked_actor(actor: str, known: Mapping[str, str]) -> str:
    """The plain name of ``actor``, which must be one of ``known`` (names by themselves)."""
    checked = known.get(actor) if isinstance(actor, str) else None
    if checked is None:
        raise InvalidInstanceData(f"unknown actor {actor!r}; actors: {', '.join(known)}")
    return checked


def checked_key(key: str) -> str:
    """An idempotency key of 1 to :data:`MAX_KEY_LENGTH` characters."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidInstanceData(f"idempotency key must be 1 to {MAX_KEY_LENGTH} characters")
    return key


def checked_id(instance_id: str) -> str:
    """An instance id of 1-64 letters, digits or ``._:-``."""
    if not isinstance(instance_id, str) or not _ID.fullmatch(instance_id):
        raise InvalidInstanceData(
            f"instance id {instance_id!r} must be 1-64 letters, digits or ._:-"
        )
    return instance_id


def checked_amount(amount: str | int | None) -> str | None:
    """An exact amount in minor units, as a digit string."""
    if amount is None:
        return None
    if isinstance(amount, bool) or not isinstance(amount, str | int):
        raise InvalidInstanceData(
            f"amount must be an int or a digit string, not {type(amount).__name__}"
        )
    text = str(amount)
    if not _AMOUNT.fullmatch(text):
        raise InvalidInstanceData(f"amount {text!r} is not a whole number of minor units")
    return text


def is_amount(text: str) -> bool:
    """Whether ``text`` is an exact amount in minor units (1 to 18 digits)."""
    return _AMOUNT.fullmatch(text) is not None


def checked_currency(currency: str) -> str:
    """An ISO 4217 currency code."""
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        raise InvalidInstanceData(f"currency {currency!r} is not an ISO 4217 code")
    return currency


def checked_wallet(flow: FlowDefinition, wallet: str | None) -> str | None:
    """The wallet, which must be one of the flow's when it names its wallets."""
    if flow.wallets and wallet not in flow.wallets:
        raise InvalidInstanceData(
            f"flow {flow.name!r} needs a wallet among {list(flow.wallets)}, got {wallet!r}"
        )
    return None if wallet is None else str(wallet)


def checked_text(name: str, value: str | None) -> str | None:
    """An optional text field of 1 to 64 characters."""
    if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 64):
        raise InvalidInstanceData(f"{name} must be 1 to 64 characters")
    return value


class CheckedRequest(NamedTuple):
    """A :class:`FireRequest` whose actor, key and payload passed the input checks."""

    instance_id: str
    event: str
    actor: str
    key: str
    payload: dict[str, Any]


def checked_request(
    request: FireRequest, actors: Mapping[str, str]
) -> CheckedRequest | InvalidInstanceData:
    """``request`` through the input checks, or the error that refuses it."""
    try:
        return CheckedRequest(
            request.instance_id,
            str(request.event),
            checked_actor(request.actor, actors),
            checked_key(request.idempotency_key),
            clean_payload(request.payload),
        )
    except InvalidInstanceData as error:
        return error
