"""``ewallet-fsm demo``: every wallet end to end against the loopback NICEPAY simulator.

The demo needs the ``simulator`` extra, imported only when the command runs.
"""

from __future__ import annotations

import argparse
from typing import Any

from adapters.cli._extras import require_extra
from adapters.cli._output import default_db, table, write, write_json


def register(subparsers: Any) -> None:
    """Add the demo command."""
    demo = subparsers.add_parser(
        "demo", help="run every wallet end to end against the simulator (the main job)"
    )
    demo.add_argument("--db", default=default_db(), help="database URL (default: %(default)s)")
    demo.add_argument("--json", action="store_true", help="print the payments as JSON")
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    require_extra("demo", "simulator", "adapters.simulator.demo", "uvicorn")
    from adapters.simulator.demo import run_demo  # checked above

    outcomes = run_demo(args.db)
    if args.json:
        write_json(
            {
                "payments": [
                    {
                        "id": o.id,
                        "flow": o.flow,
                        "wallet": o.wallet,
                        "state": o.state,
                        "transitions": o.transitions,
                        "rejected": o.rejected,
                        "refunded": o.refunded,
                        "scenario": o.scenario,
                        "expected": o.expected,
                        "expected_refunded": o.expected_refunded,
                    }
                    for o in outcomes
                ]
            }
        )
    else:
        rows = [
            (
                o.scenario,
                o.wallet,
                o.state,
                o.refunded,
                "yes" if o.as_expected else f"NO ({o.expected}, {o.expected_refunded} refunded)",
                o.transitions,
                o.rejected,
                o.id,
            )
            for o in outcomes
        ]
        headers = (
            "scenario",
            "wallet",
            "final state",
            "refunded",
            "as expected",
            "transitions",
            "rejected",
            "payment id",
        )
        write(table(headers, rows))
        write()
        write("each outcome was confirmed to the customer by the merchant's code on its event")
        write(f"database: {args.db}")
        hostile = next((o for o in outcomes if o.scenario == "dana-hostile"), outcomes[-1])
        write(f"replay one:  ewallet-fsm replay {hostile.id} --db {args.db}")
        write(f"its history: ewallet-fsm history {hostile.id} --db {args.db}")
        write(f"unconfirmed: ewallet-fsm unconfirmed --db {args.db}")
    return 0 if all(o.as_expected for o in outcomes) else 1
