"""The wallets' own pages, served outside ``/nicepay``: log in, then pay (or link) or refuse.

DANA and LinkAja ask for a phone and an OTP, ShopeePay and AstraPay for a phone and a PIN; any
non-empty answer is accepted. A scripted customer's choice is advertised on the form for the
:class:`~adapters.simulator.ScriptedBrowser` to act on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import urlencode

from adapters.simulator._api import parse
from adapters.simulator._asgi import Request, Response
from adapters.simulator._html import closed_page, partner_page
from adapters.simulator._ledger import OPEN_STATES, Link, LinkState, Transaction
from adapters.simulator._lifecycle import Lifecycle
from adapters.simulator._pages import LINK_RESULT_PATH, PAYMENT_RESULT_PATH, browser_error
from adapters.simulator._validation import Refused
from adapters.simulator.flow import SimulatorActor
from fsm.flows import Wallet

SAMPLE_SECRET = "123456"  # noqa: S105 - a demo OTP on a simulated page
"""The OTP or PIN prefilled on the wallets' login forms."""

_NAMES: Mapping[Wallet, tuple[str, str]] = {
    Wallet.DANA: ("DANA", "otp"),
    Wallet.LINKAJA: ("LinkAja", "otp"),
    Wallet.SHOPEEPAY: ("ShopeePay", "pin"),
    Wallet.ASTRAPAY: ("AstraPay", "pin"),
}
PARTNER_WALLETS = frozenset(_NAMES)


class PartnerPages:
    """Handlers for ``/partner/<wallet>[/login|/confirm]`` and AstraPay's ``/link`` pages."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        """Serve the wallets of ``lifecycle``'s simulated NICEPAY."""
        self._life = lifecycle
        self._ledger = lifecycle.ledger

    def route(self, request: Request, wallet: Wallet, page: str) -> Response | None:
        """Answer ``page`` (the path after ``/partner/<wallet>``), or ``None`` if unknown."""
        handlers: Mapping[tuple[str, str], Callable[[Request, Wallet], Response]] = {
            ("GET", ""): self._pay_login,
            ("POST", "/login"): self._pay_confirm,
            ("POST", "/confirm"): self._pay_done,
            ("GET", "/link"): self._link_login,
            ("POST", "/link/login"): self._link_confirm,
            ("POST", "/link/confirm"): self._link_done,
        }
        handler = handlers.get((request.method, page))
        if handler is None or (page.startswith("/link") and wallet is not Wallet.ASTRAPAY):
            return None
        try:
            return handler(request, wallet)
        except Refused as error:
            return browser_error(error)

    def _transaction(self, fields: Mapping[str, str], wallet: Wallet) -> Transaction:
        tx = self._ledger.get(fields.get("tXid", ""))
        if tx is None or tx.wallet is not wallet:
            raise Refused("9751", f"no {wallet.value} transaction with that tXid")
        return tx

    def _page(
        self,
        wallet: Wallet,
        step: str,
        action: str,
        hidden: Mapping[str, str],
        key: tuple[str, str],
        buttons: tuple[tuple[str, str], ...],
    ) -> Response:
        name, secret = _NAMES[wallet]
        script = self._life.script_for(*key)
        page = partner_page(
            title=f"{name}: {step}",
            step=step,
            action=action,
            hidden=hidden,
            inputs={"phone": key[1], secret: SAMPLE_SECRET} if step == "login" else {},
            buttons=buttons,
            scripted=None if script is None else (script.action.value, script.delay),
        )
        return Response.html(page)

    def _pay_login(self, request: Request, wallet: Wallet) -> Response:
        tx = self._transaction(request.query, wallet)
        state = self._ledger.state(tx.tx_id)
        if state not in OPEN_STATES:
            return Response.html(closed_page(f"This payment is {state}."))
        return self._page(
            wallet,
            "login",
            f"/partner/{wallet.value}/login",
            {"tXid": tx.tx_id},
            (tx.reference_no, tx.billing_phone),
            (("login", "Log in"),),
        )

    def _pay_confirm(self, request: Request, wallet: Wallet) -> Response:
        fields = _logged_in(parse(request), wallet)
        tx = self._transaction(fields, wallet)
        self._life.log_in(tx)
        return self._page(
            wallet,
            "confirm",
            f"/partner/{wallet.value}/confirm",
            {"tXid": tx.tx_id},
            (tx.reference_no, tx.billing_phone),
            (("pay", f"Pay Rp {tx.amount}"), ("decline", "Cancel")),
        )

    def _pay_done(self, request: Request, wallet: Wallet) -> Response:
        fields = parse(request)
        tx = self._transaction(fields, wallet)
        if fields.get("action") == "pay":
            self._life.pay(tx)
        elif fields.get("action") == "decline":
            self._life.decline(tx, SimulatorActor.CUSTOMER)
        else:
            raise Refused("9751", "action must be pay or decline")
        return Response.redirect(f"{request.base_url}{PAYMENT_RESULT_PATH}?tXid={tx.tx_id}")

    def _link(self, fields: Mapping[str, str]) -> Link:
        link = self._ledger.link(fields.get("referenceNo", ""))
        if link is None:
            raise Refused("9751", "no link request with that referenceNo")
        return link

    def _link_login(self, request: Request, wallet: Wallet) -> Response:
        link = self._link(request.query)
        if link.state is not LinkState.PENDING:
            return Response.html(closed_page(f"This link request is {link.state}."))
        return self._link_page(
            link, "login", "/partner/astrapay/link/login", (("login", "Log in"),)
        )

    def _link_confirm(self, request: Request, wallet: Wallet) -> Response:
        link = self._link(_logged_in(parse(request), wallet))
        buttons = (("pay", "Link my AstraPay account"), ("decline", "Cancel"))
        return self._link_page(link, "confirm", "/partner/astrapay/link/confirm", buttons)

    def _link_page(
        self, link: Link, step: str, action: str, buttons: tuple[tuple[str, str], ...]
    ) -> Response:
        phone = link.fields.get("billingPhone", "")
        hidden = {"referenceNo": link.reference_no}
        return self._page(
            Wallet.ASTRAPAY, step, action, hidden, (link.reference_no, phone), buttons
        )

    def _link_done(self, request: Request, wallet: Wallet) -> Response:
        fields = parse(request)
        link = self._link(fields)
        if link.state is LinkState.PENDING:
            if fields.get("action") == "pay":
                self._life.complete_link(link)
            elif fields.get("action") == "decline":
                self._life.decline_link(link)
            else:
                raise Refused("9751", "action must be pay or decline")
        query = urlencode({"referenceNo": link.reference_no})
        return Response.redirect(f"{request.base_url}{LINK_RESULT_PATH}?{query}")


def _logged_in(fields: dict[str, str], wallet: Wallet) -> dict[str, str]:
    secret = _NAMES[wallet][1]
    if not fields.get("phone") or not fields.get(secret):
        raise Refused("9751", f"log in with your phone and {secret.upper()}")
    return fields
