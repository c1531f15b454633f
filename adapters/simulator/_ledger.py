"""The simulator's records: a private engine on the nicepay_transaction flow, and the rest.

Every NICEPAY-side status change is a transition of that engine; what the flow does not hold (the
registered fields, the callback URL, amounts cancelled, AstraPay links and mandates) lives in small
dictionaries beside it, guarded by one lock.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from adapters.nicepay.tokens import nicepay_timestamp
from adapters.simulator._codes import MITRA_OF, PAY_METHOD
from adapters.simulator._config import SimulatorConfig
from adapters.simulator.flow import NICEPAY_TRANSACTION, NicepayEvent, NicepayState
from fsm.definition import Actor, Deadline, FlowDefinition, StateSpec
from fsm.engine import Engine
from fsm.errors import TransitionError
from fsm.flows import Wallet
from fsm.store.leases import Leases
from fsm.store.sql import SqlStore

logger = logging.getLogger(__name__)

OPEN_STATES = frozenset({NicepayState.INITIATED, NicepayState.UNPAID, NicepayState.PROCESSING})


@dataclass
class Transaction:
    """One registered transaction: what NICEPAY keeps beside its status."""

    tx_id: str
    wallet: Wallet
    reference_no: str
    amount: str
    """The registered amount string, exactly as received."""
    fields: dict[str, str]
    registered_at: datetime
    callback_url: str | None = None
    paid_at: datetime | None = None
    cancel_amt: int = 0
    cancels: int = 0
    mandate: str | None = None

    @property
    def mitra_cd(self) -> str:
        """The wallet's NICEPAY code."""
        return MITRA_OF[self.wallet]

    @property
    def billing_phone(self) -> str:
        """The customer's phone (for OVO, the account that gets the push)."""
        return self.fields.get("billingPhone", "")

    @property
    def db_process_url(self) -> str:
        """Where notifications go."""
        return self.fields.get("dbProcessUrl", "")


class LinkState(StrEnum):
    """Where an AstraPay account link stands."""

    PENDING = "pending"
    LINKED = "linked"
    DECLINED = "declined"


@dataclass
class Link:
    """One AstraPay ``linkEnable.do`` request and the mandate it produced."""

    reference_no: str
    fields: dict[str, str]
    requested_at: datetime
    state: LinkState = LinkState.PENDING
    mandate: str | None = None
    revoked: bool = False

    @property
    def callback_url(self) -> str | None:
        """Where the browser returns, when the request named a place."""
        return self.fields.get("callBackUrl") or None


@dataclass
class _Records:
    transactions: dict[str, Transaction] = field(default_factory=dict)
    references: dict[str, str] = field(default_factory=dict)
    links: dict[str, Link] = field(default_factory=dict)
    mandates: dict[str, str] = field(default_factory=dict)
    """Link referenceNo by mandate."""


class Ledger:
    """Transactions and links; state changes go through the private engine."""

    def __init__(self, config: SimulatorConfig, db_url: str) -> None:
        """Open (and create) the engine's database at ``db_url``."""
        self.config = config
        self.store = SqlStore(db_url, sqlite_synchronous="OFF")
        self.store.create_schema()
        flow = flow_with_expiry(config)
        self.engine = Engine(self.store, flows={flow.name: flow}, clock=config.clock)
        self.lock = threading.RLock()
        self._records = _Records()
        self._serial = itertools.count(1)

    def close(self) -> None:
        """Release the database."""
        self.store.dispose()

    def now(self) -> datetime:
        """The simulator's clock."""
        return self.engine.clock.now()

    def register(self, fields: dict[str, str], wallet: Wallet) -> Transaction:
        """Store a new transaction in status 9 (initiated) and return it."""
        with self.lock:
            now = self.now()
            tx = Transaction(
                tx_id=self.new_tx_id(now),
                wallet=wallet,
                reference_no=fields["referenceNo"],
                amount=fields["amt"],
                fields={k: v for k, v in fields.items() if k != "merchantToken"},
                registered_at=now,
                mandate=fields.get("mandateID"),
            )
            self.engine.start(
                NICEPAY_TRANSACTION.name,
                instance_id=tx.tx_id,
                wallet=wallet,
                amount=tx.amount,
                # NICEPAY may hold several transactions under one reference (its duplicate check
                # is a setting): the ledger keeps references, the instance only its tXid.
                tx_id=tx.tx_id,
                mandate=tx.mandate,
            )
            self._records.transactions[tx.tx_id] = tx
            self._records.references[tx.reference_no] = tx.tx_id
            return tx

    def new_tx_id(self, now: datetime) -> str:
        """A fresh 30-character tXid (also used for the ``canceltXid`` of a cancel)."""
        # iMid(10) + payMethod(2) + YYYYMMDD + HHMMSS (WIB) + 4 digits = 30 characters
        prefix = f"{self.config.imid}{PAY_METHOD}{nicepay_timestamp(now)}"
        while True:
            candidate = f"{prefix}{next(self._serial) % 10000:04d}"
            if candidate not in self._records.transactions:
                return candidate

    def reference_taken(self, reference_no: str) -> bool:
        """Whether a transaction or link already uses ``reference_no``."""
        with self.lock:
            return reference_no in self._records.references

    def get(self, tx_id: str) -> Transaction | None:
        """The transaction ``tx_id``, if registered."""
        with self.lock:
            return self._records.transactions.get(tx_id)

    def by_reference(self, reference_no: str) -> Transaction | None:
        """The transaction registered under ``reference_no``."""
        with self.lock:
            tx_id = self._records.references.get(reference_no)
            return None if tx_id is None else self._records.transactions.get(tx_id)

    def state(self, tx_id: str) -> str:
        """The transaction's current state in the flow (after any due expiry)."""
        self.expire_if_due(tx_id)
        return self.engine.get(tx_id).state

    def fire(self, tx_id: str, event: NicepayEvent, actor: str, key: str) -> bool:
        """Apply ``event``; ``False`` when the flow refuses it or it was applied before."""
        try:
            result = self.engine.fire_with_retry(
                tx_id, event, actor=actor, idempotency_key=f"{event}:{key}"
            )
        except TransitionError as exc:
            logger.info(
                "simulator event refused",
                extra={"instance": tx_id, "event": str(event), "reason": type(exc).__name__},
            )
            return False
        return not result.duplicate

    def expire_if_due(self, tx_id: str) -> bool:
        """Fire ``expire`` (by the timer) when the transaction's deadline has passed."""
        instance = self.engine.get(tx_id)
        deadline = instance.deadline_at
        if deadline is None or deadline > self.now():
            return False
        return self.fire(tx_id, NicepayEvent.EXPIRE, Actor.TIMER, "deadline")

    def sweep(self) -> list[str]:
        """Expire every transaction whose deadline has passed; returns their tXids."""
        return [
            instance.id
            for instance in Leases(self.store).due(self.now())
            if self.fire(instance.id, NicepayEvent.EXPIRE, Actor.TIMER, "deadline")
        ]

    def add_link(self, fields: dict[str, str]) -> Link:
        """Store a pending AstraPay link request."""
        with self.lock:
            clean = {k: v for k, v in fields.items() if k != "merchantToken"}
            link = Link(fields["referenceNo"], clean, self.now())
            self._records.links[link.reference_no] = link
            return link

    def link(self, reference_no: str) -> Link | None:
        """The link request ``reference_no``."""
        with self.lock:
            return self._records.links.get(reference_no)

    def grant_mandate(self, link: Link) -> str:
        """Mark ``link`` linked with a new numeric mandate and return it."""
        with self.lock:
            mandate = f"{secrets.randbelow(10**16):016d}"
            link.state, link.mandate = LinkState.LINKED, mandate
            self._records.mandates[mandate] = link.reference_no
            return mandate

    def mandate_link(self, mandate: str) -> Link | None:
        """The link that granted ``mandate``."""
        with self.lock:
            reference_no = self._records.mandates.get(mandate)
            return None if reference_no is None else self._records.links.get(reference_no)


def flow_with_expiry(config: SimulatorConfig) -> FlowDefinition:
    """The nicepay_transaction flow with the configured (possibly compressed) expiry windows."""
    per_wallet = {str(wallet): config.expiry_for(wallet) for wallet in Wallet}

    def adjusted(state: StateSpec) -> StateSpec:
        if state.deadline is None:
            return state
        after = config.expiry_for(Wallet.ASTRAPAY)
        return replace(state, deadline=Deadline(after, state.deadline.on_expiry, per_wallet))

    return replace(
        NICEPAY_TRANSACTION, states=tuple(adjusted(s) for s in NICEPAY_TRANSACTION.states)
    )
