"""``ewallet-fsm settle-refund``: a person settles a refund request a repair left in doubt.

The repair leaves a request in doubt, its amount reserved, when NICEPAY's cumulative refunded
total cannot say whether its cancel took effect. A person who has looked at the payment's
cancels at NICEPAY says which it was; the settlement is recorded with who and why, and anything
else (a request not in doubt, one the total already settles otherwise) is refused before
anything changes (:func:`~adapters.refunds.settle.settle_by_hand`).
"""

from __future__ import annotations

import argparse
from typing import Any

from adapters.cli._arguments import bounded_text
from adapters.cli._catalog import catalog
from adapters.cli._output import default_db, open_existing, write, write_json
from adapters.cli._resolve import MAX_NAME, MAX_REASON
from adapters.reconcile.journal import CallJournal
from adapters.refunds import refund_request, settle_by_hand
from fsm.definition import Actor
from fsm.engine import Engine
from fsm.flows import EVENT_TYPES

FOUND = {"refunded": True, "not_refunded": False}


def register(subparsers: Any) -> None:
    """Add the settle-refund command."""
    settle = subparsers.add_parser(
        "settle-refund",
        help="settle a refund request left in doubt as NICEPAY's records show it, with who and why",
    )
    settle.add_argument("id", help="the payment's instance id")
    settle.add_argument("request_id", help="the refund request's id")
    settle.add_argument(
        "--as",
        dest="found",
        required=True,
        choices=sorted(FOUND),
        help="what NICEPAY's records show of the request's cancel",
    )
    settle.add_argument(
        "--reason", required=True, type=bounded_text("--reason", MAX_REASON), help="why"
    )
    settle.add_argument(
        "--by", required=True, type=bounded_text("--by", MAX_NAME), help="who settles it"
    )
    settle.add_argument("--db", default=default_db(), help="database URL (default: %(default)s)")
    settle.add_argument("--json", action="store_true", help="print JSON")
    settle.set_defaults(handler=_settle)


def _settle(args: argparse.Namespace) -> int:
    request = refund_request(args.id, request_id=args.request_id, actor=Actor.OPERATOR)
    with open_existing(args.db) as store:
        engine = Engine(store, flows=catalog(), event_types=EVENT_TYPES)
        calls = CallJournal(store, clock=engine.clock)
        intent = settle_by_hand(
            engine, calls, request, refunded=FOUND[args.found], reason=args.reason, by=args.by
        )
    if args.json:
        write_json(
            {
                "instance": request.payment_id,
                "request_id": request.request_id,
                "amount": intent.amount,
                "outcome": intent.outcome,
            }
        )
    else:
        write(
            f"{request.payment_id}: refund request {request.request_id} ({intent.amount}) "
            f"settled as {intent.outcome} by {args.by}: {args.reason}"
        )
    return 0
