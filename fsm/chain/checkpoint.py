"""Checkpoints: a signed statement of every instance's chain head, kept outside the database.

Each instance's chain proves its own rows, not that the instance still exists or that its rows
are the newest ones: deleting a whole instance, or restoring an older copy of its rows (validly
sealed when they were written), leaves every remaining chain intact. A checkpoint anchors them
from outside: the head of every chain (instance id, its last step's number and link) and a
SHA-256 digest over all heads, the statement signed with the audit key (its id recorded). Held
against a later database, an instance missing, shorter than its head or with another link at its
head's step was deleted or rolled back; one that extends its head, or is newer than the
checkpoint, is fine. Without an audit key the statement is only hashed: it catches a damaged
file, not one rewritten by someone who recomputes the digest, and every verdict says so.

A checkpoint proves nothing while it sits in the database it vouches for: ship each one out (to
the auditors, to write-once object storage) as it is taken, and take one as often as the loss
of the steps since the last one may go unseen (every hour, and at every settlement run's end).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fsm.chain.content import LINK_FIELDS, canonical
from fsm.chain.keys import HASH_ONLY
from fsm.chain.link import Chain
from fsm.chain.verify import ChainedRows, ChainSource, ChainStatus, ChainVerdict, verify_chain
from fsm.clock import require_aware
from fsm.errors import CheckpointRefused

FORMAT = "ewallet-fsm-checkpoint/1"
"""The ``format`` a checkpoint file carries."""

_LINK = len(LINK_FIELDS)  # a log row's chain link follows its LINK_FIELDS


@dataclass(frozen=True, slots=True)
class Head:
    """Where an instance's chain stood: its number of steps and its last step's link."""

    instance_id: str
    steps: int
    link: str
    """The last step's link; empty when the instance had no step."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Every instance's :class:`Head` at ``taken_at``, signed under ``key_id``."""

    taken_at: datetime
    heads: tuple[Head, ...]
    """By instance id."""
    digest: str
    """SHA-256 over every head, in order."""
    key_id: str
    """The audit key that signed it; ``sha256``: only hashed, with no key."""
    mac: str
    _by_id: dict[str, Head] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {head.instance_id: head for head in self.heads})

    @property
    def instance_ids(self) -> tuple[str, ...]:
        """The instances it holds, by id."""
        return tuple(self._by_id)

    def head(self, instance_id: str) -> Head | None:
        """The instance's head, if the checkpoint holds the instance."""
        return self._by_id.get(instance_id)

    @property
    def keyed(self) -> bool:
        """Whether an audit key signed it (else anyone could recompute it)."""
        return self.key_id != HASH_ONLY

    @property
    def protection(self) -> str:
        """Which protection the checkpoint has, in words."""
        if self.keyed:
            return f"checkpoint signed with HMAC-SHA256 (key {self.key_id})"
        return "checkpoint is a plain SHA-256 digest (no audit key): anyone can recompute it"

    def to_json(self) -> str:
        """The checkpoint file's text."""
        return json.dumps(
            {
                "format": FORMAT,
                "taken_at": _moment(self.taken_at),
                "count": len(self.heads),
                "digest": self.digest,
                "key_id": self.key_id,
                "mac": self.mac,
                "heads": [[head.instance_id, head.steps, head.link] for head in self.heads],
            },
            indent=1,
        )


def take(
    store: ChainSource, instance_ids: Sequence[str], taken_at: datetime, *, batch: int = 500
) -> Checkpoint:
    """A checkpoint of the ids' chains as ``store`` holds them, signed with its key.

    Read ``batch`` instances at a time: each instance's rows in one transaction, so a head is
    one its chain really had (a step taken meanwhile makes a later head, which still extends).

    Raises:
        CheckpointRefused: a chain is tampered, a signed one continued hash-only among them
            (:mod:`fsm.chain.verify`); a checkpoint would vouch for it.
    """
    heads = []
    for start in range(0, len(instance_ids), batch):
        for rows in store.chained(instance_ids[start : start + batch]):
            verdict = verify_chain(store.chain, *rows)
            if verdict.status is ChainStatus.TAMPERED:
                raise CheckpointRefused(
                    f"{rows.instance_id}: chain {verdict.describe()}; no checkpoint vouches for it"
                )
            heads.append(head_of(rows))
    return sign(store.chain, require_aware(taken_at), heads)


def verify_against(
    store: ChainSource,
    checkpoint: Checkpoint,
    instance_ids: Iterable[str],
    *,
    require_key: bool = False,
) -> dict[str, ChainVerdict]:
    """The chain verdict of every id (as :func:`~fsm.chain.verify.verify_chains` gives it), each
    held against the checkpoint's head (see :func:`anchored`)."""
    chain = store.chain
    return {
        rows.instance_id: anchored(
            verify_chain(chain, *rows, require_key=require_key), rows, checkpoint
        )
        for rows in store.chained(instance_ids)
    }


def head_of(rows: ChainedRows) -> Head:
    """The head of one instance's chain as stored."""
    steps = rows.step_rows
    return Head(rows.instance_id, len(steps), steps[-1][_LINK] if steps else "")


def sign(chain: Chain, taken_at: datetime, heads: Iterable[Head]) -> Checkpoint:
    """A checkpoint of ``heads``, signed with ``chain``'s signing key (hashed without one)."""
    ordered = tuple(sorted(heads, key=lambda head: head.instance_id))
    digest = _digest(ordered)
    mac = chain.mac(chain.key_id, _statement(taken_at, len(ordered), digest))
    return Checkpoint(taken_at, ordered, digest, chain.key_id, mac)


def load(text: str, chain: Chain, *, require_key: bool = False) -> Checkpoint:
    """The checkpoint in ``text``, once its digest and signature are checked under ``chain``.

    Raises:
        CheckpointRefused: it is malformed, its heads do not match its digest, its signature is
            not the one its key makes, its key is not given, or (``require_key``) it is only
            hashed.
    """
    try:
        data = json.loads(text)
        taken_at = datetime.fromisoformat(data["taken_at"])
        heads = tuple(_head(item) for item in data["heads"])
        digest, key_id, mac = (str(data[name]) for name in ("digest", "key_id", "mac"))
        known = data["format"] == FORMAT and data["count"] == len(heads)
    except (ValueError, TypeError, KeyError) as malformed:
        raise CheckpointRefused(f"the checkpoint is malformed: {malformed}") from None
    if not known or taken_at.tzinfo is None:
        raise CheckpointRefused(f"the checkpoint is not a {FORMAT} file")
    if _digest(heads) != digest:
        raise CheckpointRefused("the checkpoint's heads do not match its digest: it was edited")
    if not chain.can_check(key_id):
        raise CheckpointRefused(
            f"the checkpoint is signed with key {key_id!r}, which was not given"
        )
    if key_id == HASH_ONLY and require_key:
        raise CheckpointRefused(
            "the checkpoint is only hashed (no audit key) and a key is required"
        )
    expected = chain.mac(key_id, _statement(taken_at, len(heads), digest))
    if not hmac.compare_digest(expected, mac):
        raise CheckpointRefused("the checkpoint's signature does not match it: it was edited")
    return Checkpoint(taken_at, heads, digest, key_id, mac)


def anchored(verdict: ChainVerdict, rows: ChainedRows, checkpoint: Checkpoint) -> ChainVerdict:
    """``verdict`` held against the checkpoint's head of the same instance.

    An instance the checkpoint holds that is missing, shorter than its head or carries another
    link at its head's step is tampered (the reason says which, and against which checkpoint).
    A chain tampered in itself keeps its own first bad step, unless the whole instance is gone.
    """
    head = checkpoint.head(rows.instance_id)
    if head is None:
        return verdict
    problem, seq = _departure(head, rows)
    gone = rows.instance_row is None and not rows.step_rows
    if problem is None or (verdict.status is ChainStatus.TAMPERED and not gone):
        return verdict
    signed = f"signed, key {checkpoint.key_id}" if checkpoint.keyed else "a plain digest, no key"
    reason = f"{problem}, against the checkpoint of {_moment(checkpoint.taken_at)} ({signed})"
    return ChainVerdict(
        rows.instance_id, ChainStatus.TAMPERED, verdict.key_ids, verdict.steps, seq, reason
    )


def _departure(head: Head, rows: ChainedRows) -> tuple[str | None, int | None]:
    """How the stored rows depart from ``head``, and the step where; ``None`` when they do not."""
    steps = rows.step_rows
    if rows.instance_row is None and not steps:
        return (
            f"the payment is missing: it was deleted (the checkpoint saw {head.steps} steps)",
            None,
        )
    if len(steps) < head.steps:
        return (
            f"{len(steps)} steps where the checkpoint saw {head.steps}: rolled back or cut short",
            None,
        )
    if head.steps and steps[head.steps - 1][_LINK] != head.link:
        return (
            f"step {head.steps} is not the one the checkpoint saw: restored from another copy"
            " or rewritten",
            head.steps,
        )
    return None, None


def _head(item: Sequence[Any]) -> Head:
    instance_id, steps, link = item
    if not isinstance(instance_id, str) or type(steps) is not int or not isinstance(link, str):
        raise TypeError("a head is [id, steps, link]")
    return Head(instance_id, steps, link)


def _digest(heads: Iterable[Head]) -> str:
    digest = hashlib.sha256()
    for head in heads:  # each head is a JSON array: no newline inside, so the joins are unique
        digest.update(canonical((head.instance_id, head.steps, head.link)) + b"\n")
    return digest.hexdigest()


def _statement(taken_at: datetime, count: int, digest: str) -> bytes:
    return canonical((FORMAT, taken_at, count, digest))


def _moment(taken_at: datetime) -> str:
    return taken_at.isoformat(timespec="microseconds")


__all__ = [
    "FORMAT",
    "Checkpoint",
    "Head",
    "anchored",
    "head_of",
    "load",
    "sign",
    "take",
    "verify_against",
]
