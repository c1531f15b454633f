"""Checking an instance's chain: every link recomputed in order, then the instance's seal.

The verdict is ``intact`` when every link and the seal were recomputed and match, ``tampered``
with the first step that does not (``seq`` ``None``: the instance row), and ``unverified`` when
nothing was found wrong but a link could not be trusted: its key was not given, or the chain is
only hashed while a key is held or required (anyone can recompute a hash chain). It says which
protection applied: the key ids the rows name, ``sha256`` for the plain hash chain. A history the
flow's rules refuse is replay's ``diverged``, not this.

A chain may begin hash-only and go on signed (a key set on a running database), never the other
way: a store holding a key signs every row it writes, and one without a key refuses to extend a
signed chain. So a hash-only step after a signed one, or a hash-only seal over signed steps, is
``tampered`` whoever checks, key or not: it was written by someone with the database but not
the key, who could rewrite everything from there on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

from fsm.chain.content import LINK_FIELDS, SEAL_FIELDS
from fsm.chain.keys import HASH_ONLY
from fsm.chain.link import Chain

_SEQ = LINK_FIELDS.index("seq")
_VERSION = SEAL_FIELDS.index("version")
_LINKED = len(LINK_FIELDS)
_SEALED = len(SEAL_FIELDS)


class ChainStatus(StrEnum):
    """What the audit chain says of an instance's stored rows."""

    INTACT = "intact"
    TAMPERED = "tampered"
    UNVERIFIED = "unverified"


@dataclass(frozen=True, slots=True)
class ChainVerdict:
    """The chain check of one instance."""

    instance_id: str
    status: ChainStatus
    key_ids: tuple[str, ...]
    """The key ids its rows name, in the order first met (``sha256``: hashed without a key)."""
    steps: int
    """The log rows read."""
    seq: int | None = None
    """The first bad step when tampered; ``None`` with a reason: the instance row."""
    reason: str | None = None
    """Why it is tampered or unverified."""

    @property
    def protection(self) -> str:
        """Which protection applied, in words."""
        keyed = [key_id for key_id in self.key_ids if key_id != HASH_ONLY]
        if not keyed:
            return "SHA-256 hash chain (no audit key)"
        if len(keyed) < len(self.key_ids):
            return f"HMAC-SHA256 (key {', '.join(keyed)}) and SHA-256 hash chain (no audit key)"
        return f"HMAC-SHA256 (key {', '.join(keyed)})"

    @property
    def where(self) -> str:
        """The first bad place: ``step N`` or ``the instance row``."""
        return "the instance row" if self.seq is None else f"step {self.seq}"

    def describe(self) -> str:
        """One line: the status, where, why, and the protection."""
        if self.status is ChainStatus.TAMPERED:
            return f"tampered at {self.where}: {self.reason} [{self.protection}]"
        if self.status is ChainStatus.UNVERIFIED:
            return f"unverified: {self.reason} [{self.protection}]"
        return f"intact, {self.steps} steps [{self.protection}]"


class ChainedRows(NamedTuple):
    """One instance's rows as its chain is checked (see :func:`verify_chain`)."""

    instance_id: str
    instance_row: Sequence[Any] | None
    step_rows: Sequence[Sequence[Any]]


class ChainSource(Protocol):
    """A store whose chain can be checked (:class:`~fsm.SqlStore`, :class:`~fsm.MemoryStore`)."""

    @property
    def chain(self) -> Chain:
        """The keys the store links with."""
        ...

    def chained(self, instance_ids: Iterable[str]) -> Iterable[ChainedRows]:
        """Each id's rows, in the order given."""
        ...


def verify_chains(
    store: ChainSource,
    instance_ids: Iterable[str],
    *,
    require_key: bool = False,
    chain: Chain | None = None,
) -> dict[str, ChainVerdict]:
    """The chain verdict of every id, in the order given.

    Args:
        store: where the rows are read.
        instance_ids: the instances to check.
        require_key: an unkeyed (hash-only) chain is ``unverified``.
        chain: the keys to check with; by default the store's own.
    """
    checker = chain or store.chain
    return {
        rows.instance_id: verify_chain(checker, *rows, require_key=require_key)
        for rows in store.chained(instance_ids)
    }


class _Tampered(Exception):
    def __init__(self, seq: int | None, reason: str) -> None:
        self.seq, self.reason = seq, reason


def verify_chain(
    chain: Chain,
    instance_id: str,
    instance_row: Sequence[Any] | None,
    step_rows: Sequence[Sequence[Any]],
    *,
    require_key: bool = False,
) -> ChainVerdict:
    """The verdict on one instance's rows.

    Args:
        chain: the keys to recompute links with.
        instance_id: the instance.
        instance_row: its :data:`SEAL_FIELDS` then ``chain_link, chain_seal, chain_key``;
            ``None`` when the instance row is missing.
        step_rows: its log rows ordered by ``seq``: :data:`LINK_FIELDS` then ``chain_link,
            chain_key``.
        require_key: a chain only hashed (no key) is ``unverified``, not ``intact``; so it is
            whenever ``chain`` holds keys.
    """
    check = _Check(chain)
    try:
        latest = check.steps(step_rows)
        check.instance(instance_row, latest, len(step_rows))
    except _Tampered as bad:
        return ChainVerdict(
            instance_id, ChainStatus.TAMPERED, check.ids, len(step_rows), bad.seq, bad.reason
        )
    if HASH_ONLY in check.key_ids and (require_key or chain.keys is not None):
        # anyone can recompute a hash chain: it proves nothing to one who expects a key
        check.unchecked.append(
            "rows are only hash-chained (no audit key), which an editor can recompute"
        )
    if check.unchecked:
        return ChainVerdict(
            instance_id, ChainStatus.UNVERIFIED, check.ids, len(step_rows), None, check.unchecked[0]
        )
    return ChainVerdict(instance_id, ChainStatus.INTACT, check.ids, len(step_rows))


class _Check:
    """One instance's check: the key ids met, and what could not be recomputed."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.key_ids: dict[str, None] = {}
        self.unchecked: list[str] = []
        self.signed = ""
        """The key id of the last signed step, once the steps are checked ("": none signed)."""

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self.key_ids)

    def steps(self, rows: Sequence[Sequence[Any]]) -> str:
        """The last step's link, once every step's position and link is checked."""
        previous, signed = "", ""
        for expected, row in enumerate(rows, start=1):
            seq, link, key_id = row[_SEQ], row[_LINKED], row[_LINKED + 1]
            if seq != expected:
                raise _Tampered(
                    expected,
                    f"step {seq!r} stands where step {expected} should: a step was deleted,"
                    " inserted or renumbered",
                )
            if not link or not key_id:
                raise _Tampered(seq, "the step carries no chain link")
            if key_id == HASH_ONLY and signed:
                self.key_ids.setdefault(HASH_ONLY)
                raise _Tampered(seq, _downgraded(f"step {seq}", signed))
            signed = signed if key_id == HASH_ONLY else key_id
            self._mac(
                self.chain.link,
                (previous, row[:_LINKED], key_id, link),
                f"step {seq}",
                seq,
                "its content or place does not match its link: rewritten, inserted or moved",
            )
            previous = link
        self.signed = signed
        return previous

    def instance(self, row: Sequence[Any] | None, latest: str, steps: int) -> None:
        """Check the instance row against the log's last link and its seal."""
        if row is None:
            raise _Tampered(None, "the log has no instance row: it was deleted")
        link, seal, key_id = row[_SEALED], row[_SEALED + 1], row[_SEALED + 2]
        if not seal or not key_id or link is None:
            raise _Tampered(None, "the instance row carries no seal")
        if key_id == HASH_ONLY and self.signed:
            self.key_ids.setdefault(HASH_ONLY)
            raise _Tampered(None, _downgraded("the instance row's seal", self.signed))
        if link != latest:
            raise _Tampered(
                None,
                f"the instance row was sealed after another last step than the log's step"
                f" {steps}: steps were deleted or added",
            )
        if row[_VERSION] != steps:
            raise _Tampered(None, f"the instance row's version is not the log's {steps} steps")
        self._mac(
            self.chain.seal,
            (latest, row[:_SEALED], key_id, seal),
            "the instance row",
            None,
            "its state, version or money fields were changed after the last step sealed them",
        )

    def _mac(
        self,
        compute: Any,
        made: tuple[str, Sequence[Any], str, str],
        what: str,
        seq: int | None,
        broken: str,
    ) -> None:
        """Recompute a link or seal: ``made`` is (what it follows, values, key id, stored)."""
        key_id = made[2]
        self.key_ids.setdefault(key_id)
        if not self.chain.can_check(key_id):
            self.unchecked.append(f"{what} is signed with key {key_id!r}, which was not given")
        elif not _matches(compute, *made):
            raise _Tampered(seq, broken)


def _downgraded(what: str, signed: str) -> str:
    return (
        f"{what} is only hashed (no audit key) after steps signed with key {signed!r}: a writer"
        " holding the key signs every row, so it was written or rewritten without the key"
    )


def _matches(compute: Any, previous: str, values: Sequence[Any], key_id: str, stored: str) -> bool:
    try:
        return bool(compute(previous, values, key_id) == stored)
    except TypeError:  # a value of a type no writer stores: written by hand
        return False


__all__ = [
    "ChainSource",
    "ChainStatus",
    "ChainVerdict",
    "ChainedRows",
    "verify_chain",
    "verify_chains",
]
