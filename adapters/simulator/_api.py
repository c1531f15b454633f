"""NICEPAY's server-to-server calls: registration, inquiry and cancel, answered as JSON.

A refusal is a JSON body with its ``resultCd`` and HTTP 200, as NICEPAY does: only faults
produce other HTTP statuses.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from adapters.nicepay import tokens as _tokens
from adapters.simulator._asgi import Request, Response
from adapters.simulator._codes import CURRENCY, PAY_METHOD, SUCCESS, status_code, status_text
from adapters.simulator._ledger import Transaction
from adapters.simulator._lifecycle import Lifecycle
from adapters.simulator._validation import (
    Refused,
    check_amount,
    check_merchant,
    check_pay_method,
    check_registration,
    check_token,
    require,
)

_NULL_METHOD_FIELDS = (
    "cardNo",
    "instmntType",
    "instmntMon",
    "vacctNo",
    "vacctValidDt",
    "vacctValidTm",
    "payNo",
    "payValidDt",
    "payValidTm",
    "receiptCode",
    "mRefNo",
    "acquBankCd",
    "issuBankCd",
)


def refusal(error: Refused) -> Response:
    """The JSON answer to a refused call."""
    return Response.json({"resultCd": error.code, "resultMsg": error.detail})


def parse(request: Request) -> dict[str, str]:
    """The request's parameters.

    Raises:
        Refused: 9751 when the body is neither a JSON object nor form data.
    """
    try:
        return request.fields()
    except ValueError:  # also JSON and Unicode decoding errors
        raise Refused("9751", "the body is neither a JSON object nor form data") from None


def _split(moment: datetime | None) -> tuple[str | None, str | None]:
    if moment is None:
        return None, None
    stamp = _tokens.nicepay_timestamp(moment)
    return stamp[:8], stamp[8:]


class NicepayApi:
    """Handlers for ``/direct/v2/registration``, ``/inquiry`` and ``/cancel``."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        """Answer on behalf of ``lifecycle``'s simulated NICEPAY."""
        self._life = lifecycle
        self._config = lifecycle.config
        self._ledger = lifecycle.ledger

    def registration(self, request: Request) -> Response:
        """Register a transaction (status 9) and return its tXid."""
        try:
            fields = parse(request)
            wallet = check_registration(fields, self._config.imid, self._config.merchant_key)
            with self._ledger.lock:
                reference_no = fields["referenceNo"]
                if self._config.duplicate_reference_check and self._ledger.reference_taken(
                    reference_no
                ):
                    raise Refused("9009")
                tx = self._ledger.register(fields, wallet)
        except Refused as error:
            return refusal(error)
        trans_dt, trans_tm = _split(tx.registered_at)
        return Response.json(
            {
                "resultCd": SUCCESS,
                "resultMsg": "SUCCESS",
                "tXid": tx.tx_id,
                "referenceNo": tx.reference_no,
                "payMethod": PAY_METHOD,
                "amt": tx.amount,
                "transDt": trans_dt,
                "transTm": trans_tm,
                "description": tx.fields.get("description", ""),
                "mitraCd": tx.mitra_cd,
                "currency": tx.fields.get("currency", CURRENCY),
                "goodsNm": tx.fields.get("goodsNm", ""),
                "billingNm": tx.fields.get("billingNm", ""),
            }
        )

    def _known(self, fields: dict[str, str]) -> Transaction:
        tx_id = fields.get("tXid")
        if not tx_id:
            raise Refused("9751", "tXid is undefined")
        tx = self._ledger.get(tx_id)
        if tx is None:
            raise Refused("9751", "tXid not found")
        return tx

    def inquiry(self, request: Request) -> Response:
        """The transaction's status in the general V2 table."""
        try:
            fields = parse(request)
            check_merchant(fields, self._config.imid)
            require(fields, ("referenceNo",))
            check_amount(fields.get("amt"))
            tx = self._known(fields)
            # NICEPAY hashes its own referenceNo and amount, so a mismatch fails the token.
            if fields["referenceNo"] != tx.reference_no or fields["amt"] != tx.amount:
                raise Refused("9010", "referenceNo or amt differs from the registration")
            check_token(
                _tokens.registration_token(
                    fields["timeStamp"],
                    self._config.imid,
                    tx.reference_no,
                    tx.amount,
                    self._config.merchant_key,
                ),
                fields,
            )
        except Refused as error:
            return refusal(error)
        return Response.json(self._status_of(tx))

    def _status_of(self, tx: Transaction) -> dict[str, Any]:
        state = self._ledger.state(tx.tx_id)
        req_dt, req_tm = _split(tx.registered_at)
        paid_dt, paid_tm = _split(tx.paid_at)
        body: dict[str, Any] = {
            "resultCd": SUCCESS,
            "resultMsg": status_text(state),
            "tXid": tx.tx_id,
            "iMid": self._config.imid,
            "referenceNo": tx.reference_no,
            "payMethod": PAY_METHOD,
            "mitraCd": tx.mitra_cd,
            "currency": tx.fields.get("currency", CURRENCY),
            "amt": tx.amount,
            "cancelAmt": str(tx.cancel_amt),
            "reqDt": req_dt,
            "reqTm": req_tm,
            "transDt": paid_dt,
            "transTm": paid_tm,
            "depositDt": paid_dt,
            "depositTm": paid_tm,
            "goodsNm": tx.fields.get("goodsNm", ""),
            "billingNm": tx.fields.get("billingNm", ""),
            "status": status_code(
                tx.wallet, state, astrapay_refund=self._config.astrapay_refund_status
            ),
        }
        body.update(dict.fromkeys(_NULL_METHOD_FIELDS))
        return body

    def cancel(self, request: Request) -> Response:
        """Void or refund per the wallet's cancel rules."""
        try:
            fields = parse(request)
            check_merchant(fields, self._config.imid)
            tx = self._known(fields)
            check_pay_method(fields)
            if fields.get("cancelType") not in ("1", "2"):
                raise Refused("9301")
            amount = check_amount(fields.get("amt"))
            check_token(
                _tokens.cancel_token(
                    fields["timeStamp"],
                    self._config.imid,
                    tx.tx_id,
                    amount,
                    self._config.merchant_key,
                ),
                fields,
            )
            if fields.get("referenceNo", tx.reference_no) != tx.reference_no:
                raise Refused("9751", "referenceNo differs from the registration")
            self._life.cancel(tx, partial=fields["cancelType"] == "2", amount=amount)
        except Refused as error:
            return refusal(error)
        now = self._ledger.now()
        trans_dt, trans_tm = _split(now)
        return Response.json(
            {
                "resultCd": SUCCESS,
                "resultMsg": "SUCCESS",
                "tXid": tx.tx_id,
                "referenceNo": tx.reference_no,
                "amt": amount,
                "transDt": trans_dt,
                "transTm": trans_tm,
                "description": fields.get("cancelMsg", ""),
                "canceltXid": self._ledger.new_tx_id(now),
            }
        )
