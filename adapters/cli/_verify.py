"""``ewallet-fsm verify``: whether stored payments are the ones written, and valid.

Each payment's audit chain is recomputed (:mod:`fsm.chain`, under the keys in
``$EWALLET_FSM_AUDIT_KEY``) and its log replayed through its flow. A row that does not read as
written (an unknown flow or state, a payload that is not JSON) is reported, never a traceback.
Exit 1 when any payment is tampered or its replay is not consistent, and also when its chain
could not be checked under a key while one is given (or ``--require-key``): rows rewritten and
hashed again by someone without the key read as unverified. ``--accept-unkeyed`` accepts such
chains, for rows stored before the key was set (``ewallet-fsm reseal`` signs them), but never a
hash-only step or seal after signed steps: that is tampered (see :mod:`fsm.chain.verify`). 0
otherwise.

``--against CHECKPOINT`` holds every chain against the heads a checkpoint signed
(``ewallet-fsm checkpoint``): a payment missing, or shorter than or departing from its head
(rolled back to an older copy), is tampered; ``--all`` then checks the checkpoint's payments
too. A checkpoint that is malformed, edited or signed with a key not given is refused.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.cli._catalog import catalog
from adapters.cli._checkpoint import summary
from adapters.cli._output import default_db, open_existing, write, write_json
from fsm.chain.checkpoint import Checkpoint, verify_against
from fsm.chain.checkpoint import load as load_checkpoint
from fsm.chain.verify import ChainStatus, ChainVerdict, verify_chains
from fsm.errors import InstanceNotFound
from fsm.replay import ReplayResult, Verdict, replay_instance
from fsm.store.sql import SqlStore


def register(subparsers: Any) -> None:
    """Add the verify command."""
    verify = subparsers.add_parser(
        "verify",
        help="check stored payments against their audit chain and flow (exit 1: tampered)",
    )
    add_selection(verify)
    verify.add_argument(
        "--require-key",
        action="store_true",
        help="a chain not checked under an audit key ($EWALLET_FSM_AUDIT_KEY) fails too",
    )
    verify.add_argument(
        "--accept-unkeyed",
        action="store_true",
        help="with an audit key given, accept chains only hashed (rows stored before the key "
        "was set) instead of failing on them",
    )
    verify.add_argument(
        "--against",
        type=Path,
        metavar="CHECKPOINT",
        help="also find payments deleted or rolled back since this checkpoint file",
    )
    verify.add_argument("--db", default=default_db(), help="database URL (default: %(default)s)")
    verify.add_argument("--json", action="store_true", help="print JSON")
    verify.set_defaults(handler=_verify)


def add_selection(parser: Any) -> None:
    """Add the choice of one instance (``ID``) or every one (``--all``)."""
    parser.add_argument("id", nargs="?", help="one instance id")
    parser.add_argument("--all", action="store_true", help="every instance in the database")


def selection_refused(args: argparse.Namespace) -> bool:
    """Whether neither or both of ``ID`` and ``--all`` were given (said on standard error)."""
    if (args.id is None) != (not args.all):
        return False
    sys.stderr.write(f"ewallet-fsm {args.command}: error: give either ID or --all\n")
    return True


@dataclass(frozen=True)
class Checked:
    """One instance: its chain verdict, and its replay when its row could be replayed."""

    chain: ChainVerdict
    replay: ReplayResult | None
    problem: str | None
    """Why it was not replayed (its row is gone, its flow unknown)."""

    def failed(self, strict: bool) -> bool:
        """Whether this instance makes the command fail (``strict``: unverified does too)."""
        status = self.chain.status
        if status is ChainStatus.TAMPERED or (strict and status is ChainStatus.UNVERIFIED):
            return True
        return self.replay is None or self.replay.verdict is not Verdict.CONSISTENT


def _verify(args: argparse.Namespace) -> int:
    if selection_refused(args):
        return 2
    with open_existing(args.db) as store:
        # Whoever holds a key must not take a chain it cannot check for a checked one: rows
        # rewritten and hashed again by someone without the key read as unverified, not tampered.
        strict = args.require_key or (store.chain.keys is not None and not args.accept_unkeyed)
        anchor = None
        if args.against is not None:
            text = args.against.read_text(encoding="utf-8")
            anchor = load_checkpoint(text, store.chain, require_key=strict)
        ids = store.instance_ids() if args.all else [args.id]
        if args.all and anchor is not None:
            ids = sorted({*ids, *anchor.instance_ids})
        checked = list(check(store, ids, require_key=args.require_key, against=anchor))
    if not args.all and _never_stored(checked[0], anchor):
        raise InstanceNotFound(args.id)
    failed = [c for c in checked if c.failed(strict)]
    if args.json:
        report: dict[str, Any] = {"protection": _protection(store)}
        if anchor is not None:
            report["checkpoint"] = summary(anchor)
        report.update(
            checked=len(checked), failed=len(failed), instances=[checked_json(c) for c in checked]
        )
        write_json(report)
    else:
        for item in checked:
            write(_line(item))
        if anchor is not None:
            write(f"against the checkpoint of {anchor.taken_at.isoformat()}: {anchor.protection}")
        write(f"{len(checked)} checked, {len(failed)} failed ({_protection(store)})")
    return 1 if failed else 0


def _never_stored(item: Checked, anchor: Checkpoint | None) -> bool:
    """Whether no row of the instance exists, nor did at the checkpoint (else: deleted)."""
    missing = item.chain.steps == 0 and item.problem == "no instance row"
    return missing and (anchor is None or anchor.head(item.chain.instance_id) is None)


def check(
    store: SqlStore,
    instance_ids: Iterable[str],
    *,
    require_key: bool,
    against: Checkpoint | None = None,
) -> Iterable[Checked]:
    """The chain verdict and the replay of each id, held against a checkpoint when given."""
    if against is None:
        verdicts = verify_chains(store, instance_ids, require_key=require_key)
    else:
        verdicts = verify_against(store, against, instance_ids, require_key=require_key)
    for instance_id, verdict in verdicts.items():
        yield _replayed(store, instance_id, verdict)


def _replayed(store: SqlStore, instance_id: str, verdict: ChainVerdict) -> Checked:
    try:
        instance = store.get(instance_id)
        history = store.history(instance_id)
    except InstanceNotFound:
        return Checked(verdict, None, "no instance row")
    except (TypeError, ValueError) as unreadable:  # a value no writer stores, e.g. a time
        return Checked(verdict, None, f"its rows do not read back: {unreadable}")
    flows = catalog()
    if instance.flow not in flows:
        return Checked(verdict, None, f"flow {instance.flow!r} is not one of the known flows")
    lineage = flows.lineage(instance.flow)  # every version: each step under its own
    return Checked(verdict, replay_instance(lineage, instance, history, chain=verdict), None)


def _protection(store: SqlStore) -> str:
    keys = store.chain.keys
    return "no audit key given" if keys is None else f"audit keys {', '.join(keys.ids)}"


def _line(item: Checked) -> str:
    chain = item.chain
    if item.replay is None:
        replayed = f"not replayed: {item.problem}"
    else:
        replayed = f"replay {item.replay.verdict}"
        if item.replay.divergence is not None:
            replayed += f" ({item.replay.divergence.reason})"
    return f"{chain.instance_id}: chain {chain.describe()}; {replayed}"


def chain_json(verdict: ChainVerdict) -> dict[str, Any]:
    """A chain verdict as JSON data."""
    return {
        "status": str(verdict.status),
        "seq": verdict.seq,
        "where": None if verdict.status is not ChainStatus.TAMPERED else verdict.where,
        "reason": verdict.reason,
        "key_ids": list(verdict.key_ids),
        "protection": verdict.protection,
        "steps": verdict.steps,
    }


def checked_json(item: Checked) -> dict[str, Any]:
    """One instance's verdicts as JSON data."""
    result = item.replay
    return {
        "instance": item.chain.instance_id,
        "chain": chain_json(item.chain),
        "replay": None if result is None else str(result.verdict),
        "divergence": None
        if result is None or result.divergence is None
        else result.divergence.reason,
        "damaged": [] if result is None else list(result.damaged),
        "problem": item.problem,
    }
