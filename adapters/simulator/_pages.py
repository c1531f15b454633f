"""NICEPAY's browser steps: the payment page, AstraPay's link and pay calls, and the way back.

These are browser requests, so they answer with redirects and HTML (JSON only for ShopeePay's
``returnJsonFormat=1``). A transaction's way back to ``callBackUrl`` goes through NICEPAY's result
page, which waits while the wallet has not answered (OVO) and then redirects with the §8 fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit, urlunsplit

from adapters.nicepay import tokens as _tokens
from adapters.simulator._api import parse
from adapters.simulator._asgi import Request, Response
from adapters.simulator._codes import CURRENCY, PAY_METHOD, SUCCESS
from adapters.simulator._faults import Faults
from adapters.simulator._html import autosubmit_page, closed_page, error_page, waiting_page
from adapters.simulator._ledger import OPEN_STATES, Link, LinkState, Transaction
from adapters.simulator._lifecycle import Lifecycle
from adapters.simulator._validation import (
    INITIATE_REQUIRED,
    LINK_REQUIRED,
    Refused,
    check_amount,
    check_merchant,
    check_pay_method,
    check_reference,
    check_timestamp,
    check_token,
    require,
)
from fsm.flows import Wallet

PAYMENT_RESULT_PATH = "/nicepay/direct/v2/payment/result"
LINK_RESULT_PATH = "/nicepay/api/link/result"


def partner_url(base_url: str, wallet: Wallet, page: str = "", **query: str) -> str:
    """A wallet's page on the simulator (outside the ``/nicepay`` prefix)."""
    return f"{base_url}/partner/{wallet.value}{page}?{urlencode(query)}"


def with_query(url: str, params: Mapping[str, str]) -> str:
    """``url`` with ``params`` appended to its query string."""
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit(parts._replace(query=query))


def browser_error(error: Refused, *, as_json: bool = False) -> Response:
    """A refused browser request: an error page (JSON for ``returnJsonFormat=1``)."""
    if as_json:
        return Response.json({"resultCd": error.code, "resultMsg": error.detail})
    return Response.html(error_page(error.code, error.detail))


class NicepayPages:
    """Handlers for the payment page, ``linkEnable.do``, ``linkInitiate.do`` and the way back."""

    def __init__(self, lifecycle: Lifecycle, faults: Faults) -> None:
        """Serve the browser steps of ``lifecycle``'s simulated NICEPAY."""
        self._life = lifecycle
        self._config = lifecycle.config
        self._ledger = lifecycle.ledger
        self._faults = faults

    def payment(self, request: Request) -> Response:
        """``/direct/v2/payment``: check the request, open the payment, send the browser on."""
        as_json = request.query.get("returnJsonFormat") == "1"
        try:
            fields = parse(request)
            as_json = fields.get("returnJsonFormat") == "1"
            tx = self._payable(fields)
        except Refused as error:
            return browser_error(error, as_json=as_json)
        self._life.open_payment(tx, fields["callBackUrl"])
        if tx.wallet is Wallet.OVO:  # no wallet page: NICEPAY waits for the push result
            return Response.redirect(f"{request.base_url}{PAYMENT_RESULT_PATH}?tXid={tx.tx_id}")
        page = partner_url(request.base_url, tx.wallet, tXid=tx.tx_id)
        if as_json and tx.wallet is Wallet.SHOPEEPAY:
            return Response.json(
                {
                    "resultCd": SUCCESS,
                    "resultMsg": "SUCCESS",
                    "tXid": tx.tx_id,
                    "redirectUrlApp": f"{page}&via=app",
                    "redirectUrlHttp": page,
                }
            )
        return Response.redirect(page)

    def _payable(self, fields: dict[str, str]) -> Transaction:
        check_timestamp(fields)
        tx_id = fields.get("tXid", "")
        tx = self._ledger.get(tx_id) if tx_id else None
        if tx is None:
            raise Refused("9751", "tXid is undefined or unknown")
        require(fields, ("callBackUrl",))
        expected = _tokens.registration_token(
            fields["timeStamp"],
            self._config.imid,
            tx.reference_no,
            tx.amount,
            self._config.merchant_key,
        )
        check_token(expected, fields)
        state = self._ledger.state(tx.tx_id)
        if state not in OPEN_STATES:
            raise Refused("9752", f"the transaction is {state}")
        return tx

    def payment_result(self, request: Request) -> Response:
        """NICEPAY's result page: wait while the wallet is busy, then return to the merchant."""
        tx = self._ledger.get(request.query.get("tXid", ""))
        if tx is None or tx.callback_url is None:
            return browser_error(Refused("9751", "unknown transaction"))
        state = self._ledger.state(tx.tx_id)
        if state in OPEN_STATES:
            url = f"{PAYMENT_RESULT_PATH}?tXid={tx.tx_id}"
            return Response.html(waiting_page(url, "Waiting for the wallet..."))
        code, message = self._life.callback_result(state)
        return self._back(tx.reference_no, tx.callback_url, _callback_fields(tx, code, message))

    def _back(self, reference_no: str, url: str, params: Mapping[str, str]) -> Response:
        fault = self._faults.take_callback(reference_no)
        if fault is not None and fault.drop:
            return Response.html(closed_page("You may close this window."))
        self._life.notifier.callback_served(reference_no)
        if self._config.callback_method == "post":
            return Response.html(autosubmit_page(url, params))
        return Response.redirect(with_query(url, params))

    def link_enable(self, request: Request) -> Response:
        """``/api/linkEnable.do``: start linking an AstraPay account (T4)."""
        try:
            fields = parse(request)
            check_merchant(fields, self._config.imid)
            check_pay_method(fields)
            if fields.get("mitraCd") != "ASTR":
                raise Refused("9751", "mitraCd must be ASTR")
            require(fields, (*LINK_REQUIRED, "userIP"))
            check_reference(fields)
            expected = _tokens.link_enable_token(
                self._config.imid,
                fields["referenceNo"],
                fields["billingPhone"],
                self._config.merchant_key,
            )
            check_token(expected, fields)
            link = self._new_link(fields)
        except Refused as error:
            return browser_error(error)
        return Response.redirect(
            partner_url(request.base_url, Wallet.ASTRAPAY, "/link", referenceNo=link.reference_no)
        )

    def _new_link(self, fields: dict[str, str]) -> Link:
        with self._ledger.lock:
            taken = self._ledger.link(fields["referenceNo"]) is not None
            if taken and self._config.duplicate_reference_check:
                raise Refused("9009")
            return self._ledger.add_link(fields)

    def link_initiate(self, request: Request) -> Response:
        """``/api/linkInitiate.do``: pay with a mandate (T5); the customer verifies on AstraPay."""
        try:
            fields = parse(request)
            check_merchant(fields, self._config.imid)
            check_pay_method(fields)
            amount = check_amount(fields.get("amt"))
            require(fields, (*INITIATE_REQUIRED, "mandateID"))
            check_reference(fields)
            expected = _tokens.link_initiate_token(
                self._config.imid, fields["referenceNo"], amount, self._config.merchant_key
            )
            check_token(expected, fields)
            tx = self._register_with_mandate(fields)
        except Refused as error:
            return browser_error(error)
        self._life.open_payment(tx, fields["callBackUrl"])
        return Response.redirect(partner_url(request.base_url, Wallet.ASTRAPAY, tXid=tx.tx_id))

    def _register_with_mandate(self, fields: dict[str, str]) -> Transaction:
        link = self._ledger.mandate_link(fields["mandateID"])
        if link is None:
            raise Refused("9751", "unknown mandateID")
        if link.revoked:
            raise Refused("9752", "the mandate has been revoked")
        with self._ledger.lock:
            reference_no = fields["referenceNo"]
            if self._config.duplicate_reference_check and self._ledger.reference_taken(
                reference_no
            ):
                raise Refused("9009")
            return self._ledger.register({**fields, "mitraCd": "ASTR"}, Wallet.ASTRAPAY)

    def link_result(self, request: Request) -> Response:
        """Return the browser to the merchant after AstraPay's link page (mandate per config)."""
        link = self._ledger.link(request.query.get("referenceNo", ""))
        if link is None or link.state is LinkState.PENDING:
            return browser_error(Refused("9751", "unknown or unfinished link request"))
        if link.callback_url is None:
            return Response.html(closed_page("Your AstraPay account is linked."))
        return self._back(link.reference_no, link.callback_url, self._link_fields(link))

    def _link_fields(self, link: Link) -> dict[str, str]:
        linked = link.state is LinkState.LINKED
        fields = {
            "resultCd": SUCCESS if linked else "9752",
            "resultMsg": "SUCCESS" if linked else "Account link declined",
            "referenceNo": link.reference_no,
            "payMethod": PAY_METHOD,
            "mitraCd": "ASTR",
            "billingPhone": link.fields.get("billingPhone", ""),
        }
        if linked and link.mandate and self._config.mandate_in in ("callback", "both"):
            fields[self._config.mandate_field] = link.mandate
        return fields


def _callback_fields(tx: Transaction, code: str, message: str) -> dict[str, str]:
    stamp = _tokens.nicepay_timestamp(tx.paid_at or tx.registered_at)
    return {
        "resultCd": code,
        "resultMsg": message,
        "tXid": tx.tx_id,
        "referenceNo": tx.reference_no,
        "payMethod": PAY_METHOD,
        "amt": tx.amount,
        "currency": tx.fields.get("currency", CURRENCY),
        "goodsNm": tx.fields.get("goodsNm", ""),
        "billingNm": tx.fields.get("billingNm", ""),
        "transDt": stamp[:8],
        "transTm": stamp[8:],
        "description": tx.fields.get("description", ""),
        "mitraCd": tx.mitra_cd,
    }
