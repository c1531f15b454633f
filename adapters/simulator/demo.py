"""The main job: every wallet end to end against the loopback simulator, over real HTTP.

The simulator plays NICEPAY and the wallets, a scripted browser plays the customer, and the
merchant side is this library: the service registers and redirects, the ASGI app receives
notifications and browser returns, and every status is settled by an inquiry; the merchant's
code reacts to each outcome's event: it tells the customer, then records it. One payment also
meets duplicate, reordered and forged notifications and still ends correctly, an AstraPay payment
whose first return is forged still ends paid, one partial refund is requested twice and refunded
once, and one cancel loses its answer and is settled by the reconciler.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import SecretStr

from adapters.nicepay.tokens import notification_token
from adapters.reconcile.recovery import Reconciler
from adapters.service import LinkOrder
from adapters.simulator._browser import ScriptedBrowser
from adapters.simulator._config import CustomerAction
from adapters.simulator._simulator import NicepaySimulator
from adapters.simulator.rig import DEMO_AMOUNT, IMID, MerchantRig, demo_order, merchant_rig
from fsm.chain.keys import AuditKeys
from fsm.definition import Actor
from fsm.engine import Engine
from fsm.flows import EVENT_TYPES, FLOWS, Wallet
from fsm.model import Instance
from fsm.store.sql import SqlStore

SETTLE_TIMEOUT = 15.0


@dataclass(frozen=True)
class Scenario:
    """One payment of the demo and the state it must end in."""

    name: str
    wallet: Wallet
    action: CustomerAction
    expected: str
    hostile: bool = False


SCENARIOS = (
    Scenario("ovo-paid", Wallet.OVO, CustomerAction.PAY, "order_confirmed"),
    Scenario("ovo-expired", Wallet.OVO, CustomerAction.ABANDON, "expiry_confirmed"),
    Scenario("dana-paid", Wallet.DANA, CustomerAction.PAY, "order_confirmed"),
    Scenario("linkaja-failed", Wallet.LINKAJA, CustomerAction.DECLINE, "failure_confirmed"),
    Scenario("shopeepay-app-paid", Wallet.SHOPEEPAY, CustomerAction.PAY, "order_confirmed"),
    Scenario("dana-hostile", Wallet.DANA, CustomerAction.PAY, "order_confirmed", hostile=True),
)
ASTRAPAY_EXPECTED = ("registration_confirmed", "customer_updated")


@dataclass(frozen=True)
class Outcome:
    """One row of the demo's table."""

    id: str
    scenario: str
    flow: str
    wallet: str
    state: str
    expected: str
    transitions: int
    rejected: int
    refunded: str = "0"
    """The refunded total the payment stores (NICEPAY's ``cancelAmt``)."""
    expected_refunded: str = "0"

    @property
    def as_expected(self) -> bool:
        """Whether the payment ended where its scenario says it must, with as much refunded."""
        return (self.state, self.refunded) == (self.expected, self.expected_refunded)


def run_demo(db_url: str) -> list[Outcome]:
    """Run every scenario against a fresh simulator; payments go to ``db_url``."""
    store = SqlStore(db_url, audit_keys=AuditKeys.from_env())
    store.create_schema()
    with merchant_rig(Engine(store, flows=FLOWS, event_types=EVENT_TYPES), store) as rig:
        played = [_play(rig, scenario) for scenario in SCENARIOS]
        played += _play_astrapay(rig)
        played.append(_play_partial_refund(rig))
        played.append(_play_lost_cancel(rig))
        _drain(rig.sim)
        outcomes = [
            _outcome(rig, rig.service.engine.get(o.id), o.scenario, o.expected, o.expected_refunded)
            for o in played
        ]
    store.dispose()
    return outcomes


def _drain(sim: NicepaySimulator, quiet: float = 0.5) -> None:
    """Let late, duplicated and delayed notifications arrive before the table is taken."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    seen, since = len(sim.deliveries), time.monotonic()
    while time.monotonic() - since < quiet and time.monotonic() < deadline:
        time.sleep(0.05)
        if len(sim.deliveries) != seen:
            seen, since = len(sim.deliveries), time.monotonic()


def _play(rig: MerchantRig, scenario: Scenario) -> Outcome:
    order = demo_order(f"ORD-{rig.run}-{scenario.name}", scenario.wallet)
    rig.sim.script_customer(reference_no=order.reference_no, action=scenario.action)
    if scenario.hostile:
        rig.sim.faults.notification(order.reference_no, duplicate=2, reorder=True)
    started = rig.service.start_payment(order, payment_id=f"demo-{rig.run}-{scenario.name}")
    payment = started.instance
    if scenario.hostile:
        _forge(rig, payment)
    browser = ScriptedBrowser(rig.http, prefer="app")
    step = started.step
    browser.open(step.app_url or step.url)
    final = _settle(rig, payment.id)
    if scenario.hostile and final.tx_id:
        rig.sim.send_notification(final.tx_id)  # a late redelivery, after the order is confirmed
    return _outcome(rig, final, scenario.name, scenario.expected)


def _forge(rig: MerchantRig, payment: Instance) -> None:
    """An attacker's notification and browser return, before the customer has paid."""
    tx_id = payment.tx_id or ""
    fake = {
        "tXid": tx_id,
        "referenceNo": payment.reference_no or "",
        "amt": payment.amount or "",
        "iMid": IMID,
        "status": "0",
        "merchantToken": notification_token(IMID, tx_id, payment.amount or "", SecretStr("guess")),
    }
    rig.http.post(rig.service.notification_url, data=fake)
    rig.http.get(rig.service.callback_url, params={**fake, "resultCd": "0000"})


def _settle(rig: MerchantRig, payment_id: str) -> Instance:
    """Wait for the status check the notification asked for (the rig's worker runs it) to
    settle the payment; then the merchant reacts to its event."""
    engine = rig.service.engine
    payment = _wait(engine, payment_id, lambda p: engine.flow_of(p).state(p.state).kind.settled)
    if not engine.flow_of(payment).state(payment.state).kind.settled:
        # Nothing arrived in time: the deadline's status check, run now.
        payment = rig.service.check_status(payment_id, actor=Actor.TIMER)
    rig.react()
    return engine.get(payment_id)


def _wait(engine: Engine, instance_id: str, done: Callable[[Instance], bool]) -> Instance:
    deadline = time.monotonic() + SETTLE_TIMEOUT
    instance = engine.get(instance_id)
    while not done(instance) and time.monotonic() < deadline:
        time.sleep(0.05)
        instance = engine.get(instance_id)
    return instance


def _play_astrapay(rig: MerchantRig) -> list[Outcome]:
    link_order = LinkOrder(
        reference_no=f"LNK-{rig.run}",
        billing_name="Siti Rahayu",
        billing_phone="081234567891",
        billing_email="siti@example.co.id",
        user_ip="127.0.0.1",
    )
    rig.sim.script_customer(reference_no=link_order.reference_no, action=CustomerAction.PAY)
    started = rig.service.start_link(link_order, link_id=f"demo-{rig.run}-astrapay-link")
    ScriptedBrowser(rig.http).submit(started.step.url, started.step.fields)
    engine = rig.service.engine
    link = _wait(engine, started.instance.id, lambda i: i.state in {"linked", "mandate_missing"})
    rig.react()
    link = engine.get(link.id)
    return [
        _outcome(rig, link, "astrapay-link", ASTRAPAY_EXPECTED[0]),
        _pay_astrapay(rig, link, "astrapay-pay"),
        _pay_astrapay(rig, link, "astrapay-forged-return", forge_return=True),
    ]


def _pay_astrapay(
    rig: MerchantRig, link: Instance, name: str, *, forge_return: bool = False
) -> Outcome:
    """Pay with the link's mandate; ``forge_return``: an attacker's return comes first.

    The forged return names a tXid NICEPAY never issued. It is kept as a hint that NICEPAY's
    inquiry refuses, binds nothing, and shuts out neither the customer's own return nor the
    notification, so the payment still ends paid.
    """
    order = demo_order(f"ORD-{rig.run}-{name}", Wallet.ASTRAPAY, link_id=link.id)
    rig.sim.script_customer(reference_no=order.reference_no, action=CustomerAction.PAY)
    paying = rig.service.start_payment(order, payment_id=f"demo-{rig.run}-{name}")
    if forge_return:
        bogus = {"tXid": f"{IMID}05{'0' * 14}9999", "referenceNo": order.reference_no}
        rig.http.get(rig.service.callback_url, params={**bogus, "resultCd": "0000"})
    ScriptedBrowser(rig.http).submit(paying.step.url, paying.step.fields)
    final = _settle(rig, paying.instance.id)
    return _outcome(rig, final, name, ASTRAPAY_EXPECTED[1])


def _paid_order(rig: MerchantRig, name: str, wallet: Wallet) -> Instance:
    """A payment of ``wallet`` paid by its customer and confirmed to them."""
    order = demo_order(f"ORD-{rig.run}-{name}", wallet)
    rig.sim.script_customer(reference_no=order.reference_no, action=CustomerAction.PAY)
    started = rig.service.start_payment(order, payment_id=f"demo-{rig.run}-{name}")
    ScriptedBrowser(rig.http, prefer="app").open(started.step.app_url or started.step.url)
    return _settle(rig, started.instance.id)


def _play_partial_refund(rig: MerchantRig) -> Outcome:
    """One item of a paid order is refunded, and the request is sent again (a retry, or a
    second replica): the retry answers from the first and NICEPAY refunds 50000 once."""
    name = "shopeepay-partial-refund"
    paid = _paid_order(rig, name, Wallet.SHOPEEPAY)
    for _ in range(2):
        rig.service.cancel(
            paid.id,
            request_id=f"{name}-1",
            amount="50000",
            reason="one shirt returned",
            requested_by="demo shop",
        )
    final = rig.service.engine.get(paid.id)
    return _outcome(rig, final, name, "refunded", expected_refunded="50000")


def _play_lost_cancel(rig: MerchantRig) -> Outcome:
    """A paid order is cancelled, and NICEPAY's answer is lost; the payment still ends voided.

    NICEPAY carries the cancel out and then answers 503, as a dropped connection would. The
    request stays in doubt, so its retry sends nothing and nothing is refunded twice. The void
    arrives by NICEPAY's notification and its inquiry; the reconciler's pass after the grace
    period asks once more and closes the cancel's intent.
    """
    name = "ovo-cancel-answer-lost"
    paid = _paid_order(rig, name, Wallet.OVO)
    rig.sim.faults.response("/direct/v2/cancel", status=503, process=True)
    for reason in ("customer changed their mind", "the customer asks again"):
        rig.service.cancel(paid.id, request_id=f"{name}-1", reason=reason)
    reconciler = Reconciler(rig.service)  # its repairs only: the database may hold other runs
    reconciler.repair_open_intents(rig.service.engine.clock.now() + reconciler.grace)
    final = rig.service.engine.get(paid.id)
    return _outcome(rig, final, name, "voided", expected_refunded=DEMO_AMOUNT)


def _outcome(
    rig: MerchantRig,
    instance: Instance,
    scenario: str,
    expected: str,
    expected_refunded: str = "0",
) -> Outcome:
    return Outcome(
        id=instance.id,
        scenario=scenario,
        flow=instance.flow,
        wallet=instance.wallet or "",
        state=instance.state,
        expected=expected,
        transitions=instance.version,
        rejected=len(rig.service.engine.rejections(instance.id)),
        refunded=instance.refunded_amount or "0",
        expected_refunded=expected_refunded,
    )
