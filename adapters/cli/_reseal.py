"""``ewallet-fsm reseal``: seal with the audit key the chains stored without one.

Rows from before the audit chain, or written while no key was set, are only hash-chained, and a
key holder's ``verify`` fails on them (see :mod:`fsm.store.reseal`). ``reseal`` checks each such
chain and, when it is intact, links and seals it again under the first key in
``$EWALLET_FSM_AUDIT_KEY``; a chain found tampered is left as it is. Exit 1 when any payment was
refused, 2 without a key. Take a new checkpoint after resealing: the old ones hold the old links.
"""

from __future__ import annotations

import argparse
from typing import Any

from adapters.cli._output import default_db, open_existing, write, write_json
from adapters.cli._verify import add_selection, selection_refused
from fsm.store.reseal import Outcome, reseal


def register(subparsers: Any) -> None:
    """Add the reseal command."""
    command = subparsers.add_parser(
        "reseal",
        help="seal hash-only audit chains with the audit key, once found intact (exit 1: refused)",
    )
    add_selection(command)
    command.add_argument("--db", default=default_db(), help="database URL (default: %(default)s)")
    command.add_argument("--json", action="store_true", help="print JSON")
    command.set_defaults(handler=_reseal)


def _reseal(args: argparse.Namespace) -> int:
    if selection_refused(args):
        return 2
    with open_existing(args.db) as store:
        done = list(reseal(store, store.instance_ids() if args.all else [args.id]))
    counts = {str(outcome): sum(r.outcome is outcome for r in done) for outcome in Outcome}
    if args.json:
        write_json(
            {
                **counts,
                "instances": [
                    {
                        "instance": r.instance_id,
                        "outcome": str(r.outcome),
                        "steps": r.steps,
                        "key_id": r.key_id,
                        "reason": r.reason,
                    }
                    for r in done
                ],
            }
        )
    else:
        for r in done:
            why = f": {r.reason}" if r.reason else ""
            write(f"{r.instance_id}: {r.outcome}, {r.steps} steps, key {r.key_id}{why}")
        write(", ".join(f"{count} {outcome}" for outcome, count in counts.items()))
    return 1 if counts[Outcome.REFUSED] else 0
