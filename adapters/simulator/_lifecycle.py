"""What happens to a transaction inside NICEPAY: the page opens, the wallet answers, refunds.

Each operation is engine transitions (with the actor NICEPAY would see) plus the side effects the
reference describes: the OVO push, notifications to ``dbProcessUrl``, cancel rules and amounts.
"""

from __future__ import annotations

from adapters.simulator._cancel import CancelOutcome, decide_cancel
from adapters.simulator._codes import SUCCESS
from adapters.simulator._config import CustomerAction, SimulatorConfig
from adapters.simulator._customer import CustomerScripts, Script
from adapters.simulator._ledger import OPEN_STATES, Ledger, Link, LinkState, Transaction
from adapters.simulator._notify import Notification, Notifier, link_fields, payment_fields
from adapters.simulator._scheduler import Scheduler
from adapters.simulator._validation import Refused
from adapters.simulator.flow import NicepayEvent, NicepayState, SimulatorActor
from fsm.definition import Actor
from fsm.flows import Wallet

E, S = NicepayEvent, NicepayState
_REVERSIBLE = frozenset({S.PAID, S.REFUNDED})


class Lifecycle:
    """Moves transactions and links, and tells the merchant."""

    def __init__(
        self,
        config: SimulatorConfig,
        ledger: Ledger,
        notifier: Notifier,
        customers: Scheduler,
        scripts: CustomerScripts,
    ) -> None:
        """Wire the lifecycle to the records, the notifier and the customers' worker."""
        self.config = config
        self.ledger = ledger
        self.notifier = notifier
        self._customers = customers
        self._scripts = scripts

    def script_for(self, reference_no: str, billing_phone: str) -> Script | None:
        """The scripted behaviour of a customer, by referenceNo first, then by phone."""
        return self._scripts.lookup(reference_no, billing_phone)

    def open_payment(self, tx: Transaction, callback_url: str) -> None:
        """The browser reached the payment page: status 3, and for OVO the push goes out."""
        with self.ledger.lock:
            tx.callback_url = callback_url
            self.ledger.fire(tx.tx_id, E.OPEN_PAYMENT_PAGE, SimulatorActor.CUSTOMER, "page")
        if tx.wallet is Wallet.OVO:
            self._push(tx)

    def _push(self, tx: Transaction) -> None:
        if not self.ledger.fire(
            tx.tx_id, E.START_PROCESSING, SimulatorActor.WALLET_PARTNER, "push"
        ):
            return
        script = self.script_for(tx.reference_no, tx.billing_phone)
        script = script or Script(self.config.ovo_default_action)
        action = script.action
        self._customers.call_later(script.delay, lambda: self._act_quietly(tx, action))

    def act(self, tx: Transaction, action: CustomerAction) -> bool:
        """Carry out the customer's answer; ``False`` when nothing changed."""
        if action is CustomerAction.PAY:
            return self.pay(tx)
        if action is CustomerAction.DECLINE:
            return self.decline(tx)
        return False

    def _act_quietly(self, tx: Transaction, action: CustomerAction) -> None:
        self.act(tx, action)

    def log_in(self, tx: Transaction) -> None:
        """The customer logged in on the wallet's page: status 4 while they confirm."""
        with self.ledger.lock:
            if self.ledger.state(tx.tx_id) == S.UNPAID:
                self.ledger.fire(tx.tx_id, E.START_PROCESSING, SimulatorActor.CUSTOMER, "confirm")

    def pay(self, tx: Transaction, actor: str = SimulatorActor.WALLET_PARTNER) -> bool:
        """The wallet approves: status 0, and the payment notification is sent."""
        with self.ledger.lock:
            self.log_in(tx)
            if not self.ledger.fire(tx.tx_id, E.APPROVE, actor, "wallet"):
                return False
            tx.paid_at = self.ledger.now()
        self.notify(tx, "payment", "0")
        return True

    def decline(self, tx: Transaction, actor: str = SimulatorActor.WALLET_PARTNER) -> bool:
        """The customer or the wallet refuses: status 8 (no notification: nothing was paid)."""
        return self.ledger.fire(tx.tx_id, E.DECLINE, actor, "wallet")

    def expire(self, tx: Transaction) -> bool:
        """The timer ends an open transaction now, whatever its deadline."""
        return self.ledger.fire(tx.tx_id, E.EXPIRE, Actor.TIMER, "deadline")

    def cancel(self, tx: Transaction, *, partial: bool, amount: str) -> None:
        """Void or refund per the wallet's rules (§12).

        Raises:
            Refused: 9314, 9319, 9321 or 9334.
        """
        with self.ledger.lock:
            state = self.ledger.state(tx.tx_id)
            if state in OPEN_STATES:
                self._cancel_unpaid(tx, partial=partial, amount=amount)
                return
            if state not in _REVERSIBLE or tx.paid_at is None:
                raise Refused("9314", f"a {state} transaction cannot be cancelled")
            outcome = decide_cancel(
                self.config.cancel_rule(tx.wallet),
                now=self.ledger.now(),
                paid_at=tx.paid_at,
                max_age=self.config.max_cancel_age,
                partial=partial,
            )
            _check_amount(partial, int(amount), int(tx.amount) - tx.cancel_amt)
            void = outcome is CancelOutcome.VOID and state == S.PAID
            event = E.CANCEL if void else E.REFUND
            tx.cancels += 1
            self.ledger.fire(tx.tx_id, event, Actor.MERCHANT, str(tx.cancels))
            tx.cancel_amt += int(amount)
        if self.config.notify_reversals:
            self.notify(tx, "reversal", "1")

    def _cancel_unpaid(self, tx: Transaction, *, partial: bool, amount: str) -> None:
        if not self.config.allow_unpaid_cancel or partial:
            raise Refused("9314", "an unpaid transaction cannot be cancelled")
        _check_amount(False, int(amount), int(tx.amount))
        self.ledger.fire(tx.tx_id, E.CANCEL, Actor.MERCHANT, "unpaid")

    def notify(self, tx: Transaction, kind: str, status: str) -> None:
        """Send a notification about ``tx`` with ``status`` to its ``dbProcessUrl``."""
        fields = payment_fields(tx, status, self.config, self.ledger.now())
        self.notifier.send(
            Notification(
                kind,
                tx.reference_no,
                tx.tx_id,
                tx.db_process_url,
                fields,
                self.config.notification_format,
            )
        )

    def complete_link(self, link: Link) -> str:
        """AstraPay linked the account: grant a mandate and send the link notification."""
        mandate = self.ledger.grant_mandate(link)
        fields = link_fields(link, self.config, self.ledger.now())
        url = link.fields.get("dbProcessUrl", "")
        note = Notification(
            "link", link.reference_no, None, url, fields, self.config.notification_format
        )
        self.notifier.send(note)
        return mandate

    def decline_link(self, link: Link) -> None:
        """The customer refused the link on AstraPay's page."""
        with self.ledger.lock:
            link.state = LinkState.DECLINED

    def callback_result(self, state: str) -> tuple[str, str]:
        """The callback's ``resultCd`` and ``resultMsg`` for a transaction in ``state``."""
        if state == S.PAID:
            return SUCCESS, "SUCCESS"
        return "9752", f"Payment {state}"


def _check_amount(partial: bool, amount: int, remaining: int) -> None:
    if not partial and amount != remaining:
        raise Refused("9319", f"a full cancel must be for {remaining}")
    if partial and not 0 < amount <= remaining:
        raise Refused("9321")
