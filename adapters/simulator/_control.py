"""Test control outside ``/nicepay``: look at a transaction, settle it, script a customer, notify.

``GET  /_sim/transactions/<tXid>``                 the transaction as JSON
``POST /_sim/transactions/<tXid>/approve``         the wallet approves (status 0, notification)
``POST /_sim/transactions/<tXid>/decline``         the wallet declines (status 8)
``POST /_sim/transactions/<tXid>/expire``          the timer expires it now
``POST /_sim/transactions/<tXid>/notify``          send a notification now (``status``, default 0)
``POST /_sim/customers``                           script a customer (``referenceNo`` or
                                                   ``billingPhone``, ``action``, ``delay``)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from adapters.simulator._api import parse
from adapters.simulator._asgi import Request, Response
from adapters.simulator._codes import status_code
from adapters.simulator._config import CustomerAction
from adapters.simulator._customer import CustomerScripts, Script
from adapters.simulator._ledger import Transaction
from adapters.simulator._lifecycle import Lifecycle
from adapters.simulator._validation import Refused

CONTROL_PREFIX = "/_sim"


@dataclass(frozen=True)
class TransactionView:
    """A transaction as the simulator holds it."""

    tx_id: str
    reference_no: str
    wallet: str
    mitra_cd: str
    state: str
    """The state in the nicepay_transaction flow."""
    status: str
    """The inquiry ``status`` code, as an inquiry would report it."""
    amount: str
    cancel_amt: str
    callback_url: str | None
    paid_at: datetime | None
    mandate: str | None


def view(lifecycle: Lifecycle, tx: Transaction) -> TransactionView:
    """A snapshot of ``tx``."""
    state = lifecycle.ledger.state(tx.tx_id)
    return TransactionView(
        tx_id=tx.tx_id,
        reference_no=tx.reference_no,
        wallet=tx.wallet.value,
        mitra_cd=tx.mitra_cd,
        state=state,
        status=status_code(
            tx.wallet, state, astrapay_refund=lifecycle.config.astrapay_refund_status
        ),
        amount=tx.amount,
        cancel_amt=str(tx.cancel_amt),
        callback_url=tx.callback_url,
        paid_at=tx.paid_at,
        mandate=tx.mandate,
    )


class Control:
    """Handlers under ``/_sim``."""

    def __init__(self, lifecycle: Lifecycle, scripts: CustomerScripts) -> None:
        """Control ``lifecycle``'s transactions and ``scripts``."""
        self._life = lifecycle
        self._scripts = scripts

    def route(self, request: Request) -> Response | None:
        """Answer a control request, or ``None`` for an unknown path."""
        parts = request.path[len(CONTROL_PREFIX) :].strip("/").split("/")
        try:
            if parts == ["customers"] and request.method == "POST":
                return self._script(parse(request))
            if len(parts) in (2, 3) and parts[0] == "transactions":
                return self._transaction(request, parts[1], parts[2] if len(parts) == 3 else "")
        except Refused as error:
            return Response.json({"error": error.detail}, status=400)
        return None

    def _transaction(self, request: Request, tx_id: str, action: str) -> Response | None:
        tx = self._life.ledger.get(tx_id)
        if tx is None:
            return Response.json({"error": "unknown tXid"}, status=404)
        if request.method == "GET" and not action:
            return Response.json(_jsonable(asdict(view(self._life, tx))))
        if request.method != "POST":
            return None
        applied = self._act(tx, action, parse(request))
        if applied is None:
            return None
        return Response.json({"applied": applied, **_jsonable(asdict(view(self._life, tx)))})

    def _act(self, tx: Transaction, action: str, fields: Mapping[str, str]) -> bool | None:
        if action == "approve":
            return self._life.pay(tx)
        if action == "decline":
            return self._life.decline(tx)
        if action == "expire":
            return self._life.expire(tx)
        if action == "notify":
            self._life.notify(tx, "manual", fields.get("status", "0"))
            return True
        return None

    def _script(self, fields: Mapping[str, str]) -> Response:
        try:
            action = CustomerAction.parse(fields.get("action", "pay"))
            script = Script(action, float(fields.get("delay", "0")))
            self._scripts.add(
                script,
                reference_no=fields.get("referenceNo") or None,
                billing_phone=fields.get("billingPhone") or None,
            )
        except ValueError as exc:
            raise Refused("9751", str(exc)) from None
        return Response.json({"scripted": action.value, "delay": script.delay})


def _jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in data.items()}
