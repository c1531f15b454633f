"""``ewallet-fsm demo``: every wallet's lifecycle, scripted through the engine.

Each scenario fires the events that NICEPAY's responses, callbacks, notifications and inquiries
would produce, including a duplicate, a forged settlement and a late notification that must be
refused. The run ends with a table of payments and how to replay one.
"""

from __future__ import annotations

import argparse
import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from adapters.cli._output import default_db, table, write, write_json
from fsm.definition import Actor
from fsm.engine import Engine
from fsm.errors import TransitionError
from fsm.flows import AstrapayPaymentEvent as AP
from fsm.flows import LinkEvent as L
from fsm.flows import PaymentEvent as P
from fsm.flows import Wallet
from fsm.persistence import SqlStore

A = Actor
Step = tuple[str, Actor, dict[str, Any]]

_REGISTER: Sequence[Step] = (
    (P.SEND_REGISTRATION, A.MERCHANT, {}),
    (P.ACCEPT_REGISTRATION, A.NICEPAY_RESPONSE, {"tx_id": "<txid>", "resultCd": "0000"}),
    (P.REQUEST_PAYMENT, A.MERCHANT, {}),
)
_INQUIRY_PAID: Sequence[Step] = (
    (P.CONFIRM_PAYMENT, A.STATUS_INQUIRY, {"status": "0"}),
    (P.CONFIRM_ORDER, A.MERCHANT, {}),
)


@dataclass(frozen=True)
class Scenario:
    """One scripted payment."""

    name: str
    flow: str
    wallet: Wallet
    steps: Sequence[Step]
    amount: str | None = "150000"


SCENARIOS = (
    Scenario(
        "ovo-paid",
        "ewallet_payment",
        Wallet.OVO,
        (
            *_REGISTER,
            (P.PUSH_TO_APP, A.NICEPAY_RESPONSE, {}),
            (P.RECEIVE_NOTIFICATION, A.NICEPAY_NOTIFICATION, {"status": "0"}),
            (P.CHECK_STATUS, A.MERCHANT, {}),
            *_INQUIRY_PAID,
        ),
    ),
    Scenario(
        "ovo-expired",
        "ewallet_payment",
        Wallet.OVO,
        (
            *_REGISTER,
            (P.PUSH_TO_APP, A.NICEPAY_RESPONSE, {}),
            (P.CHECK_STATUS, A.TIMER, {}),
            (P.EXPIRE_PAYMENT, A.STATUS_INQUIRY, {"status": "5"}),
        ),
    ),
    Scenario(
        "dana-paid",
        "ewallet_payment",
        Wallet.DANA,
        (
            *_REGISTER,
            (P.REDIRECT_CUSTOMER, A.MERCHANT, {}),
            (P.RETURN_FROM_PARTNER, A.BROWSER_CALLBACK, {"resultCd": "0000"}),
            *_INQUIRY_PAID,
        ),
    ),
    Scenario(
        "linkaja-failed",
        "ewallet_payment",
        Wallet.LINKAJA,
        (
            *_REGISTER,
            (P.REDIRECT_CUSTOMER, A.MERCHANT, {}),
            (P.RECEIVE_NOTIFICATION, A.NICEPAY_NOTIFICATION, {}),
            (P.CHECK_STATUS, A.MERCHANT, {}),
            (P.FAIL_PAYMENT, A.STATUS_INQUIRY, {"status": "8"}),
        ),
    ),
    Scenario(
        "shopeepay-paid",
        "ewallet_payment",
        Wallet.SHOPEEPAY,
        (
            *_REGISTER,
            (P.REDIRECT_CUSTOMER, A.MERCHANT, {"redirect": "app"}),
            (P.CHECK_STATUS, A.TIMER, {}),
            (P.REPORT_PENDING, A.STATUS_INQUIRY, {"status": "4"}),
            (P.RETURN_FROM_PARTNER, A.BROWSER_CALLBACK, {}),
            *_INQUIRY_PAID,
        ),
    ),
    Scenario(
        "astrapay-link",
        "astrapay_link",
        Wallet.ASTRAPAY,
        (
            (L.RECEIVE_PARTNER_REDIRECT, A.NICEPAY_RESPONSE, {}),
            (L.SHOW_REGISTRATION_PAGE, A.MERCHANT, {}),
            (L.BEGIN_REGISTRATION, A.BROWSER_CALLBACK, {}),
            (L.CONFIRM_LINK, A.NICEPAY_NOTIFICATION, {"mandate": "<mandate>"}),
        ),
        amount=None,
    ),
    Scenario(
        "astrapay-pay",
        "astrapay_payment",
        Wallet.ASTRAPAY,
        (
            (AP.SUBMIT_LINK_INITIATE, A.MERCHANT, {}),
            (AP.RECEIVE_PAYMENT_PAGE, A.NICEPAY_RESPONSE, {"tx_id": "<txid>"}),
            (AP.REDIRECT_CUSTOMER, A.MERCHANT, {}),
            (AP.RECEIVE_CALLBACK, A.BROWSER_CALLBACK, {}),
            (AP.CHECK_STATUS, A.MERCHANT, {}),
            (AP.CONFIRM_PAYMENT, A.STATUS_INQUIRY, {"status": "0"}),
            (AP.UPDATE_CUSTOMER, A.MERCHANT, {}),
        ),
    ),
    Scenario(
        "dana-hostile",
        "ewallet_payment",
        Wallet.DANA,
        (
            *_REGISTER,
            (P.REDIRECT_CUSTOMER, A.MERCHANT, {}),
            (P.RECEIVE_NOTIFICATION, A.NICEPAY_NOTIFICATION, {"delivery": "1"}),
            (P.RECEIVE_NOTIFICATION, A.NICEPAY_NOTIFICATION, {"delivery": "1"}),  # duplicate
            (P.CONFIRM_PAYMENT, A.NICEPAY_NOTIFICATION, {"status": "0"}),  # forged settlement
            (P.CHECK_STATUS, A.MERCHANT, {}),
            *_INQUIRY_PAID,
            (P.RECEIVE_NOTIFICATION, A.NICEPAY_NOTIFICATION, {"delivery": "late"}),  # stale
        ),
    ),
)


def register(subparsers: Any) -> None:
    """Add the demo command."""
    demo = subparsers.add_parser("demo", help="run every wallet's lifecycle (the main job)")
    demo.add_argument("--db", default=default_db(), help="database URL (default: %(default)s)")
    demo.add_argument("--json", action="store_true", help="print the payments as JSON")
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    store = SqlStore(args.db)
    store.create_schema()
    engine = Engine(store)
    run = uuid.uuid4().hex[:8]
    mandate: str | None = None
    payments = []
    for scenario in SCENARIOS:
        instance_id = f"demo-{run}-{scenario.name}"
        engine.start(
            scenario.flow,
            instance_id=instance_id,
            wallet=scenario.wallet,
            amount=scenario.amount,
            reference_no=f"ORD-{run}-{scenario.name}",
            mandate=mandate if scenario.flow == "astrapay_payment" else None,
        )
        _play(engine, instance_id, scenario.steps, run)
        final = engine.get(instance_id)
        mandate = final.mandate or mandate
        payments.append(
            {
                "id": instance_id,
                "flow": final.flow,
                "wallet": final.wallet,
                "state": final.state,
                "transitions": final.version,
                "rejected": len(engine.rejections(instance_id)),
            }
        )
    _report(payments, args)
    return 0


def _play(engine: Engine, instance_id: str, steps: Sequence[Step], run: str) -> None:
    for event, actor, payload in steps:
        data = {k: _fill(v, instance_id, run) for k, v in payload.items()}
        key = f"{event}:{actor}:{'|'.join(f'{k}={v}' for k, v in sorted(data.items()))}"
        # A refusal is recorded by the engine and counted in the table; the script goes on.
        with contextlib.suppress(TransitionError):
            engine.fire(instance_id, event, actor=actor, idempotency_key=key, payload=data)


def _fill(value: Any, instance_id: str, run: str) -> Any:
    if value == "<txid>":
        return f"IONPAYTEST05{run}{abs(hash(instance_id)) % 10**10:010d}"[:30]
    if value == "<mandate>":
        return f"MANDATE{run}"
    return value


def _report(payments: list[dict[str, Any]], args: argparse.Namespace) -> None:
    if args.json:
        write_json({"payments": payments})
        return
    rows = [
        (p["id"], p["flow"], p["wallet"], p["state"], p["transitions"], p["rejected"])
        for p in payments
    ]
    write(table(("payment", "flow", "wallet", "final state", "transitions", "rejected"), rows))
    write()
    write(f"database: {args.db}")
    write(f"replay one:  ewallet-fsm replay {payments[-1]['id']} --db {args.db}")
    write(f"its history: ewallet-fsm history {payments[-1]['id']} --db {args.db}")
