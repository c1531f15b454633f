"""``ewallet-fsm checkpoint``: sign the head of every payment's audit chain, to keep elsewhere.

Each payment's chain proves its own rows, not that the payment is still there or that its rows
are the newest: ``verify --against CHECKPOINT`` finds a payment deleted or rolled back to an
older copy since a checkpoint (see :mod:`fsm.chain.checkpoint`). The checkpoint is signed with
the first key in ``$EWALLET_FSM_AUDIT_KEY`` (only hashed without one, and it says so). Keep it out
of the database it vouches for: ship it to the auditors or to write-once object storage as it
is taken. A database with a tampered chain gets no checkpoint (exit 1).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.cli._output import default_db, open_existing, write, write_json
from fsm.chain.checkpoint import Checkpoint, take


def register(subparsers: Any) -> None:
    """Add the checkpoint command."""
    checkpoint = subparsers.add_parser(
        "checkpoint",
        help="sign every payment's chain head, for verify --against (keep it out of the database)",
    )
    checkpoint.add_argument(
        "--out", type=Path, help="write it to this new file (default: print it)"
    )
    checkpoint.add_argument(
        "--db", default=default_db(), help="database URL (default: %(default)s)"
    )
    checkpoint.add_argument("--json", action="store_true", help="with --out, print a JSON summary")
    checkpoint.set_defaults(handler=_checkpoint)


def _checkpoint(args: argparse.Namespace) -> int:
    with open_existing(args.db) as store:
        taken = take(store, store.instance_ids(), datetime.now(UTC))
    if args.out is None:
        sys.stdout.write(taken.to_json() + "\n")
        return 0
    with args.out.open("x", encoding="utf-8") as out:  # never over an earlier checkpoint
        out.write(taken.to_json() + "\n")
    if args.json:
        write_json({**summary(taken), "file": str(args.out)})
    else:
        write(
            f"checkpoint of {len(taken.heads)} payments written to {args.out} ({taken.protection})"
        )
    return 0


def summary(checkpoint: Checkpoint) -> dict[str, Any]:
    """What a checkpoint holds, as JSON data (without its heads)."""
    return {
        "taken_at": checkpoint.taken_at.isoformat(),
        "payments": len(checkpoint.heads),
        "digest": checkpoint.digest,
        "key_id": checkpoint.key_id,
        "keyed": checkpoint.keyed,
        "protection": checkpoint.protection,
    }
