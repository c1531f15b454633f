"""``ewallet-fsm reseal --before TIME``: seal with the audit key the chains stored without one.

Rows from before the audit chain, or written while no key was set, are only hash-chained, and a
key holder's ``verify`` fails on them (see :mod:`fsm.store.reseal`). ``reseal`` checks each such
chain and, when it is hash-only throughout, intact and last moved before ``--before`` (the
moment the key was set), links and seals it again under the first key in
``$EWALLET_FSM_AUDIT_KEY``. Any other chain is left as it is: one signed throughout is ``already
keyed`` (so a second run changes nothing), the rest are refused with the reason. Run it once,
right after setting the key. Exit 1 when any payment was refused, 2 without a key or cutoff.
Take a new checkpoint after resealing: the old ones hold the old links.
"""

from __future__ import annotations

import argparse
from typing import Any

from adapters.cli._output import aware_time, default_db, open_existing, write, write_json
from adapters.cli._verify import add_selection, selection_refused
from fsm.store.reseal import Outcome, reseal


def register(subparsers: Any) -> None:
    """Add the reseal command."""
    command = subparsers.add_parser(
        "reseal",
        help="seal hash-only audit chains with the audit key, once found intact (exit 1: refused)",
    )
    add_selection(command)
    command.add_argument(
        "--before",
        required=True,
        metavar="TIME",
        help="when the audit key was set (ISO 8601 with a timezone): a chain whose last step is"
        " at or after it is refused",
    )
    command.add_argument("--db", default=default_db(), help="database URL (default: %(default)s)")
    command.add_argument("--json", action="store_true", help="print JSON")
    command.set_defaults(handler=_reseal)


def _reseal(args: argparse.Namespace) -> int:
    if selection_refused(args):
        return 2
    cutoff = aware_time(args.before, "--before")
    if cutoff is None:  # argparse requires it: never here
        return 2
    with open_existing(args.db) as store:
        ids = store.instance_ids() if args.all else [args.id]
        done = list(reseal(store, ids, before=cutoff))
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
