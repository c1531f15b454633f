"""``ewallet-fsm settle-refund``: a person settles a refund request a repair left in doubt.

The repair leaves a request in doubt, its amount reserved, when NICEPAY's cumulative refunded
total cannot say whether its cancel took effect, or when NICEPAY never stated a total its repair
could use (``repaired:no_total``). A person who has looked at the payment's cancels at NICEPAY
says which it was; the command asks NICEPAY afresh (``$EWALLET_FSM_IMID``,
``$EWALLET_FSM_MERCHANT_KEY``) and the settlement is recorded with who and why, and with what
NICEPAY said. Refused before anything is settled: a request not in doubt, another cancel open,
an inquiry that may answer shortly (an outage) or that NICEPAY refuses for our own credentials,
a total that already settles the request otherwise, and "refunded" for a cancel never sent
(:func:`~adapters.refunds.settle.settle_by_hand`).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import httpx

from adapters.cli._arguments import bounded_text
from adapters.cli._output import default_db, open_existing, write, write_json
from adapters.cli._resolve import MAX_NAME, MAX_REASON
from adapters.cli._serve import IMID_ENV, KEY_ENV, NICEPAY_URL_ENV
from adapters.cli._status import service_on
from adapters.nicepay.config import Environment
from adapters.refunds import refund_request, settle_by_hand
from fsm.definition import Actor

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
    settle.add_argument(
        "--nicepay-url",
        default=os.environ.get(NICEPAY_URL_ENV, Environment.SANDBOX.value),
        help=f"NICEPAY base URL, asked afresh before settling (${IMID_ENV}, ${KEY_ENV}; "
        f"default: ${NICEPAY_URL_ENV} or the sandbox)",
    )
    settle.add_argument("--json", action="store_true", help="print JSON")
    settle.set_defaults(handler=_settle)


def _settle(args: argparse.Namespace) -> int:
    request = refund_request(args.id, request_id=args.request_id, actor=Actor.OPERATOR)
    with (
        open_existing(args.db) as store,
        httpx.Client(timeout=httpx.Timeout(15.0, connect=5.0)) as http,
    ):
        service = service_on(store, http, args.nicepay_url)
        intent = settle_by_hand(
            service, request, refunded=FOUND[args.found], reason=args.reason, by=args.by
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
