"""One contract for every registered wallet adapter: a new wallet inherits every test here.

Each adapter runs through :class:`~adapters.service.PaymentService` on a real engine and store
(SQLite and PostgreSQL), its NICEPAY client on the simulator in-process, which keeps transactions
and checks every token. The contract: the customer step each wallet documents (reference §8, §13),
the log of who did what, registration failures that are recorded and raised, no second
registration, and the one inquiry table of §6.3 applied to every wallet, only by
``status_inquiry``: every documented code fires exactly one event, unknown codes change nothing,
repeats are absorbed, and an answer that would move a settled payment backwards is recorded as
stale.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest

from adapters.errors import (
    DuplicateReference,
    InvalidToken,
    MalformedResponse,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    UnknownAdapter,
    WalletRefused,
)
from adapters.inbound.parsing import InboundRequest
from adapters.nicepay.client import INQUIRY_PATH, PAYMENT_PATH, REGISTRATION_PATH
from adapters.reconcile.status import REPORT_STATUS, apply_answer, request_check
from adapters.service import PaymentOrder, Started
from adapters.wallets.base import CustomerStep
from adapters.wallets.registry import ADAPTERS, adapter_for, names
from adapters.wallets.status_codes import INQUIRY_STATUS, event_for_status
from fsm.definition import Actor
from fsm.errors import (
    GuardRefused,
    InstanceExists,
    InstanceNotFound,
    InvalidInstanceData,
    RejectReason,
)
from fsm.flows import ASTRAPAY_PAYMENT, EWALLET_PAYMENT, FLOWS
from fsm.model import Instance, RejectedEvent
from tests.adapters.mock_nicepay import (
    Forward,
    ServiceRig,
    inquiry_answers,
    linked_account,
    submit_at_nicepay,
)
from tests.adapters.values import (
    AMOUNT,
    BASE,
    CALLBACK_URL,
    IMID,
    KEY_TEXT,
    MANDATE,
    NOTIFY_URL,
    ORIGIN,
    link_order,
    payment_order,
    refusal,
    sha,
)
from tests.adapters.worked import WorkedHandler
from tests.conftest import database

WIB = ZoneInfo("Asia/Jakarta")
FORM = "application/x-www-form-urlencoded"
M, NR, SI = Actor.MERCHANT, Actor.PROVIDER_RESPONSE, Actor.STATUS_INQUIRY
WALLETS = sorted(ADAPTERS)
REGISTERING = [w for w in WALLETS if ADAPTERS[w].flow == EWALLET_PAYMENT.name]
STALE, DUPLICATE = "stale", "duplicate"


@dataclass(frozen=True)
class Contract:
    """What one wallet documents: its partner code, flow, customer step, log and deadline."""

    mitra_cd: str
    flow: str
    step: str
    events: tuple[tuple[str, str], ...]
    state: str
    deadline: timedelta


_REGISTER = (("send_registration", M), ("accept_registration", NR), ("request_payment", M))
CONTRACTS = {
    "ovo": Contract(
        "OVOE",
        "ewallet_payment",
        "redirect",
        (*_REGISTER, ("push_to_app", M)),
        "awaiting_approval",
        timedelta(seconds=55),
    ),
    "dana": Contract(
        "DANA",
        "ewallet_payment",
        "redirect",
        (*_REGISTER, ("redirect_customer", M)),
        "redirected_to_partner",
        timedelta(hours=24),
    ),
    "linkaja": Contract(
        "LINK",
        "ewallet_payment",
        "redirect",
        (*_REGISTER, ("redirect_customer", M)),
        "redirected_to_partner",
        timedelta(minutes=5),
    ),
    "shopeepay": Contract(
        "ESHP",
        "ewallet_payment",
        "app_link",
        (*_REGISTER, ("redirect_customer", M)),
        "redirected_to_partner",
        timedelta(minutes=5),
    ),
    "astrapay": Contract(
        "ASTR",
        "astrapay_payment",
        "form",
        (("submit_link_initiate", M),),
        "link_initiate_submitted",
        timedelta(minutes=20),
    ),
}

# Reference §6.3: the current V2 e-wallet table, the same for every wallet.
DOCUMENTED_CODES = frozenset({"0", "1", "2", "3", "4", "5", "8", "9"})


@dataclass(frozen=True)
class Answer:
    """What one inquiry code does before and after the payment was paid."""

    event: str
    dest: str
    event_after_paid: str
    after_paid: str  # a state, or STALE / DUPLICATE: recorded, nothing applied


_PENDING = Answer("report_pending", "payment_pending", "report_pending", STALE)
_ASTRAPAY_PENDING = Answer("report_pending", "customer_paying", "report_pending", STALE)
ANSWERS = {
    "ewallet_payment": {
        "0": Answer("confirm_payment", "paid", "confirm_payment", DUPLICATE),
        "1": Answer("void_payment", "voided", "void_payment", "voided"),
        "2": Answer("refund_payment", "refunded", "refund_payment", "refunded"),
        "3": _PENDING,
        "4": _PENDING,
        "5": Answer("expire_payment", "expired", "expire_payment", STALE),
        "8": Answer("fail_payment", "failed", "fail_payment", STALE),
        "9": _PENDING,
    },
    "astrapay_payment": {
        "0": Answer("confirm_payment", "paid", "confirm_payment", DUPLICATE),
        "1": Answer("void_payment", "voided", "void_payment", "voided"),
        "2": Answer("refund_payment", "refunded", "refund_payment", "refunded"),
        "3": _ASTRAPAY_PENDING,
        "4": _ASTRAPAY_PENDING,
        "5": Answer("expire_payment", "expired", "expire_payment", STALE),
        "8": Answer("fail_payment", "failed", "refund_payment", "refunded"),  # AstraPay: refund
        "9": _ASTRAPAY_PENDING,
    },
}

_ODD_CODES: tuple[str | None, ...] = ("", None, "10", "00", "paid")


def undocumented_codes() -> list[str | None]:
    candidates = (*(str(n) for n in range(10)), *_ODD_CODES)
    return [code for code in candidates if code not in DOCUMENTED_CODES]


def contract_of(wallet: str) -> Contract:
    if wallet not in CONTRACTS:
        pytest.fail(f"{wallet!r} is registered without a contract: document its step above")
    return CONTRACTS[wallet]


def wib(rig: ServiceRig) -> str:
    return rig.clock.now().astimezone(WIB).strftime("%Y%m%d%H%M%S")


def needs_link(wallet: str) -> bool:
    return ADAPTERS[wallet].flow == ASTRAPAY_PAYMENT.name


def start(rig: ServiceRig, wallet: str, tag: str = "1") -> Started:
    """Start payment ``pay-<wallet>-<tag>`` for order ``ORD-<tag>`` (AstraPay: link it first)."""
    link_id = linked_account(rig, f"LNK-{tag}").id if needs_link(wallet) else None
    order = payment_order(wallet, f"ORD-{tag}", link_id=link_id)
    return rig.service.start_payment(order, payment_id=f"pay-{wallet}-{tag}")


def waiting(rig: ServiceRig, wallet: str, tag: str = "1") -> Instance:
    """A started payment whose tXid is known, waiting on the customer.

    AstraPay's linkInitiate is a browser step, so its tXid arrives with the first notification:
    it is delivered here through the real handler (whose inquiry answers 3, unpaid).
    """
    started = start(rig, wallet, tag)
    payment = started.instance
    if needs_link(wallet):
        tx_id, reference_no = submit_at_nicepay(rig, started), payment.reference_no or ""
        params = {
            "tXid": tx_id,
            "referenceNo": reference_no,
            "amt": AMOUNT,
            "iMid": IMID,
            "status": "0",
            "merchantToken": sha(IMID, tx_id, AMOUNT, KEY_TEXT),
        }
        request = InboundRequest(body=urlencode(params).encode(), content_type=FORM)
        assert WorkedHandler(rig.service).handle_notification(request).status == 200
    payment = rig.engine.get(payment.id)
    assert payment.tx_id
    return payment


def answer(rig: ServiceRig, payment: Instance, status: str | None) -> Instance:
    """Let NICEPAY's next inquiry answer ``status`` and run one status check."""
    inquiry_answers(rig, status)
    return rig.service.check_status(payment.id)


def events(rig: ServiceRig, payment_id: str) -> list[tuple[str, str]]:
    return [(record.event, record.actor) for record in rig.engine.history(payment_id)]


def refusals(rig: ServiceRig, payment_id: str) -> list[RejectedEvent]:
    return rig.engine.rejections(payment_id)


def assert_settled_only_by_inquiry(rig: ServiceRig, payment_id: str) -> None:
    flow = rig.engine.flow(rig.engine.get(payment_id).flow)
    for record in rig.engine.history(payment_id):
        if flow.state(record.dest).settlement:
            assert record.actor == SI, f"{record.event} settled by {record.actor}"


@pytest.fixture(params=WALLETS)
def wallet(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


# --- the registry -----------------------------------------------------------------------------


def test_every_registered_wallet_has_a_contract_a_flow_and_its_documented_table(
    wallet: str,
) -> None:
    adapter, contract = adapter_for(wallet), contract_of(wallet)
    assert adapter is ADAPTERS[wallet]
    assert (adapter.wallet, adapter.mitra_cd, adapter.flow) == (
        wallet,
        contract.mitra_cd,
        contract.flow,
    )
    assert wallet in FLOWS[adapter.flow].wallets
    assert set(INQUIRY_STATUS) == DOCUMENTED_CODES
    mapped = {
        c: event_for_status(wallet, c, current_state="status_check_requested") for c in "0123456789"
    }
    assert {code for code, event in mapped.items() if event} == DOCUMENTED_CODES
    assert wallet in names()


def test_an_unregistered_wallet_is_refused_with_the_choices() -> None:
    with pytest.raises(UnknownAdapter) as raised:
        adapter_for("gopay")
    assert raised.value.known == tuple(WALLETS)


# --- starting a payment -----------------------------------------------------------------------


def check_redirect(rig: ServiceRig, payment: Instance, step: CustomerStep) -> None:
    url = urlsplit(step.url)
    assert step.method == "GET"
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{BASE}/direct/v2/payment"
    query = dict(parse_qsl(url.query, strict_parsing=True))
    assert set(query) == {"timeStamp", "tXid", "merchantToken", "callBackUrl"}
    assert query["tXid"] == payment.tx_id
    assert query["timeStamp"] == wib(rig)  # fresh: signed now, not at registration
    (registration,) = rig.line.sent(REGISTRATION_PATH)
    assert json.loads(registration.content)["timeStamp"] < query["timeStamp"]
    assert query["merchantToken"] == sha(
        query["timeStamp"], IMID, payment.reference_no or "", AMOUNT, KEY_TEXT
    )
    assert query["callBackUrl"] == CALLBACK_URL
    assert rig.line.sent(PAYMENT_PATH) == []  # a browser step: never sent by the server


def check_app_link(rig: ServiceRig, payment: Instance, step: CustomerStep) -> None:
    page = f"{ORIGIN}/partner/shopeepay?tXid={payment.tx_id}"  # the simulator's ShopeePay page
    assert (step.app_url, step.web_url) == (f"{page}&via=app", page)
    assert step.url == step.app_url
    (sent,) = rig.line.sent(PAYMENT_PATH)  # NICEPAY answers a wrong T1 with an error
    form = dict(parse_qsl(sent.content.decode()))
    assert form["returnJsonFormat"] == "1"
    assert form["timeStamp"] == wib(rig)
    assert form["callBackUrl"] == CALLBACK_URL


def check_form(rig: ServiceRig, payment: Instance, step: CustomerStep) -> None:
    assert (step.method, step.url) == ("POST", f"{BASE}/api/linkInitiate.do")
    fields = step.fields
    assert fields["mandateID"] == payment.mandate == rig.sim.mandate_of("LNK-1")
    assert fields["merchantToken"] == sha(IMID, "ORD-1", AMOUNT, KEY_TEXT)  # T5
    assert (fields["iMid"], fields["referenceNo"], fields["amt"]) == (IMID, "ORD-1", AMOUNT)
    assert (fields["payMethod"], fields["currency"]) == ("05", "IDR")
    assert fields["timeStamp"] == wib(rig)
    assert (fields["callBackUrl"], fields["dbProcessUrl"]) == (CALLBACK_URL, NOTIFY_URL)
    assert rig.line.requests == []  # nothing is registered: the browser submits the form


STEP_CHECKS: dict[str, Callable[[ServiceRig, Instance, CustomerStep], None]] = {
    "redirect": check_redirect,
    "app_link": check_app_link,
    "form": check_form,
}


def test_start_hands_the_customer_the_documented_step(rig: ServiceRig, wallet: str) -> None:
    contract = contract_of(wallet)

    def slow_registration(request: httpx.Request, nicepay: Forward) -> httpx.Response:
        rig.clock.advance(timedelta(seconds=3))  # the step must be signed after this
        return nicepay(request)

    rig.line.intercept(REGISTRATION_PATH, slow_registration)
    started = start(rig, wallet)

    assert started.step.kind == contract.step
    assert KEY_TEXT not in started.step.model_dump_json()
    STEP_CHECKS[contract.step](rig, started.instance, started.step)


def test_start_logs_each_step_with_its_actor_and_sets_the_wallet_deadline(
    rig: ServiceRig, wallet: str
) -> None:
    contract = contract_of(wallet)
    payment = start(rig, wallet).instance

    assert events(rig, payment.id) == list(contract.events)
    assert (payment.flow, payment.state) == (contract.flow, contract.state)
    assert payment.version == len(contract.events)
    assert payment.deadline_at == rig.clock.now() + contract.deadline
    assert refusals(rig, payment.id) == []
    for request in rig.line.sent(REGISTRATION_PATH):
        body = json.loads(request.content)
        assert (body["mitraCd"], body["dbProcessUrl"]) == (contract.mitra_cd, NOTIFY_URL)
        assert (body["referenceNo"], body["amt"], body["payMethod"]) == ("ORD-1", AMOUNT, "05")


Faults = list[dict[str, Any]]
"""Response faults armed on one path, in the order the calls meet them (``fields={}``: the call
gets NICEPAY's own answer in its turn)."""
TAKEN: dict[str, Any] = {"fields": {}}
"""A resend of a registration whose answer was lost: NICEPAY's own 9009."""
REGISTRATION_FAILURES: dict[str, tuple[Faults, type[ProviderError], int]] = {
    "9001": ([{"body": refusal("9001", "Registration failed")}], WalletRefused, 1),
    "timeout-twice": ([{"timeout": True}, {"timeout": True}], ProviderTimeout, 2),
    "timeout-9009-9001": (
        [{"timeout": True}, TAKEN, {"body": refusal("9001")}],
        WalletRefused,
        3,
    ),
    "503-9009-timeout": (
        [{"status": 503, "process": True}, TAKEN, {"timeout": True}],
        ProviderTimeout,
        3,
    ),
    "9009-first": ([{"body": refusal("9009")}], DuplicateReference, 1),
}


@pytest.mark.parametrize("wallet", REGISTERING)
def test_a_failed_registration_is_recorded_and_raised(
    rig: ServiceRig, wallet: str, subtests: pytest.Subtests
) -> None:
    for tag, (faults, error, sends) in REGISTRATION_FAILURES.items():
        with subtests.test(tag):
            before = len(rig.line.requests)
            for fault in faults:
                rig.sim.faults.response(REGISTRATION_PATH, **fault)
            with pytest.raises(error) as raised:
                start(rig, wallet, tag)

            payment = rig.engine.get(f"pay-{wallet}-{tag}")
            assert payment.state == "registration_failed"
            assert events(rig, payment.id) == [("send_registration", M), ("fail_registration", NR)]
            failure = rig.engine.history(payment.id)[-1]
            assert failure.payload["resultCd"] == raised.value.provider_code
            if isinstance(raised.value, ProviderRejected):
                assert failure.payload["resultCd"] in {"9001", "9009"}
            assert len(rig.line.requests) - before == sends
            assert payment.tx_id is None

            again = payment_order(wallet, f"ORD-{tag}")
            with pytest.raises(InvalidInstanceData, match="already sent"):  # never twice
                begin_again(rig, wallet, payment, again)
            assert len(rig.line.requests) - before == sends
            assert rig.engine.get(payment.id).version == payment.version


def begin_again(rig: ServiceRig, wallet: str, payment: Instance, order: PaymentOrder) -> None:
    """The wallet's adapter asked to begin a payment it has begun already."""
    service = rig.service
    ADAPTERS[wallet].begin(payment, order, service.gateway, service.steps_of(payment.id))


@pytest.mark.parametrize("wallet", REGISTERING)
def test_a_lost_registration_answer_is_recovered_under_the_registered_reference(
    rig: ServiceRig, wallet: str
) -> None:
    rig.sim.faults.response(REGISTRATION_PATH, timeout=True, process=False)  # it never got there
    resent = start(rig, wallet, "resent").instance
    rig.sim.faults.response(REGISTRATION_PATH, timeout=True)  # registered; the resend meets 9009
    renamed = start(rig, wallet, "renamed").instance

    assert (resent.reference_no, renamed.reference_no) == ("ORD-resent", "ORD-renamed-R1")
    for payment in (resent, renamed):
        assert payment.state == contract_of(wallet).state
        known = rig.sim.transaction(payment.tx_id)
        assert known.reference_no == payment.reference_no
        rig.sim.approve(known.tx_id)
        assert rig.service.check_status(payment.id).state == "paid"  # signed as registered


def test_a_second_start_of_the_same_payment_sends_nothing(rig: ServiceRig, wallet: str) -> None:
    started = start(rig, wallet)
    payment, sent = started.instance, len(rig.line.requests)
    links = rig.engine.find(reference_no="LNK-1")
    order = payment_order(wallet, link_id=links[0].id if links else None)

    with pytest.raises(InstanceExists):
        rig.service.start_payment(order, payment_id=payment.id)
    with pytest.raises(InvalidInstanceData, match="already sent"):
        begin_again(rig, wallet, payment, order)

    assert len(rig.line.requests) == sent
    assert rig.engine.get(payment.id).version == payment.version
    assert len(rig.line.sent(REGISTRATION_PATH)) == (0 if needs_link(wallet) else 1)


# --- AstraPay needs a linked account ----------------------------------------------------------


def test_astrapay_without_a_link_is_refused_before_anything_is_stored(rig: ServiceRig) -> None:
    with pytest.raises(InvalidInstanceData, match="link_id"):
        rig.service.start_payment(payment_order("astrapay"), payment_id="pay-astrapay")
    with pytest.raises(InstanceNotFound):
        rig.engine.get("pay-astrapay")
    with pytest.raises(InstanceNotFound):
        rig.service.start_payment(payment_order("astrapay", link_id="no-such-link"))
    assert rig.line.requests == []


def _unconfirmed(rig: ServiceRig) -> Instance:
    return rig.service.start_link(link_order()).instance


def _without_mandate(rig: ServiceRig) -> Instance:
    link = rig.service.start_link(link_order()).instance
    rig.engine.fire(
        link.id, "confirm_link_without_mandate", actor=Actor.OPERATOR, idempotency_key="op"
    )
    return rig.engine.get(link.id)


def _unlinked(rig: ServiceRig) -> Instance:
    link = linked_account(rig)
    rig.engine.fire(link.id, "unlink", actor=Actor.MERCHANT, idempotency_key="unlink")
    return rig.engine.get(link.id)


@pytest.mark.parametrize(
    "make_link",
    [_unconfirmed, _without_mandate, _unlinked],
    ids=["link-pending", "mandate-missing", "unlinked"],
)
def test_astrapay_with_a_link_lacking_a_usable_mandate_is_refused_and_recorded(
    rig: ServiceRig, make_link: Callable[[ServiceRig], Instance]
) -> None:
    link = make_link(rig)
    order = payment_order("astrapay", link_id=link.id)
    with pytest.raises(GuardRefused):
        rig.service.start_payment(order, payment_id="pay-astrapay")

    payment = rig.engine.get("pay-astrapay")
    assert (payment.state, payment.version, payment.mandate) == ("checkout_requested", 0, None)
    (refusal,) = refusals(rig, payment.id)
    assert (refusal.event, refusal.reason) == ("submit_link_initiate", RejectReason.GUARD_REFUSED)
    assert rig.line.requests == []


def test_astrapay_refuses_a_link_id_that_is_not_an_account_link(rig: ServiceRig) -> None:
    other = rig.engine.start("astrapay_payment", wallet="astrapay", mandate=MANDATE)
    with pytest.raises(InvalidInstanceData, match="not an AstraPay account link"):
        rig.service.start_payment(payment_order("astrapay", link_id=other.id))


# --- status inquiry ---------------------------------------------------------------------------


def test_every_documented_status_fires_exactly_one_event_by_status_inquiry(
    rig: ServiceRig, wallet: str, subtests: pytest.Subtests
) -> None:
    flow = FLOWS[ADAPTERS[wallet].flow]
    for code in sorted(DOCUMENTED_CODES):
        with subtests.test(status=code):
            expected = ANSWERS[flow.name][code]
            payment = waiting(rig, wallet, f"s{code}")
            event = event_for_status(wallet, code, current_state="status_check_requested")
            assert event == expected.event
            specs = [s for s in flow.candidates("status_check_requested", event) if SI in s.actors]
            assert len(specs) == 1

            result = answer(rig, payment, code)

            assert result.state == expected.dest
            *_, check, applied = rig.engine.history(payment.id)
            assert (check.event, check.actor) == ("check_status", M)
            assert check.dest == "status_check_requested"
            assert (applied.event, applied.actor) == (expected.event, SI)
            assert applied.dest == expected.dest
            assert (applied.payload["status"], applied.payload["tXid"]) == (code, payment.tx_id)
            assert_settled_only_by_inquiry(rig, payment.id)


def test_after_payment_each_status_reverses_repeats_or_is_refused_as_stale(
    rig: ServiceRig, wallet: str, subtests: pytest.Subtests
) -> None:
    answers = ANSWERS[ADAPTERS[wallet].flow]
    for code in sorted(DOCUMENTED_CODES):
        with subtests.test(status=code):
            expected = answers[code]
            paid = answer(rig, waiting(rig, wallet, f"p{code}"), "0")
            assert paid.state == "paid"

            result = answer(rig, paid, code)

            last = rig.engine.history(paid.id)[-1]
            if expected.after_paid in (STALE, DUPLICATE):
                assert (result.state, result.version) == ("paid", paid.version)
                refusal = refusals(rig, paid.id)[-1]
                assert (refusal.event, refusal.actor) == (expected.event_after_paid, SI)
                assert refusal.reason == RejectReason(expected.after_paid)
                assert last.event == "confirm_payment"
            else:
                assert result.state == expected.after_paid
                assert (last.event, last.actor) == (expected.event_after_paid, SI)
                assert last.source == "paid"
            assert_settled_only_by_inquiry(rig, paid.id)


def test_an_undocumented_status_changes_nothing_and_the_deadline_checks_again(
    rig: ServiceRig, wallet: str, subtests: pytest.Subtests
) -> None:
    for index, code in enumerate(undocumented_codes()):
        with subtests.test(status=code):
            payment = waiting(rig, wallet, f"u{index}")
            assert event_for_status(wallet, code or "", current_state=payment.state) is None

            checked = answer(rig, payment, code)

            assert checked.state == "status_check_requested"
            assert rig.engine.history(payment.id)[-1].event == "check_status"
            refusal = refusals(rig, payment.id)[-1]
            assert (refusal.event, refusal.actor) == (REPORT_STATUS, SI)
            assert refusal.reason == RejectReason.UNKNOWN_STATUS
            assert refusal.payload["status"] == (code or "")
            assert checked.deadline_at == rig.clock.now() + timedelta(minutes=1)
            due = rig.service.leases.due(rig.clock.now() + timedelta(minutes=1))
            assert payment.id in [instance.id for instance in due]

            recorded = len(refusals(rig, payment.id))
            again = answer(rig, checked, code)  # the next check, with the same answer
            assert (again.state, again.version) == (checked.state, checked.version)
            assert len(refusals(rig, payment.id)) == recorded + 1
            assert refusals(rig, payment.id)[-1].reason == RejectReason.UNKNOWN_STATUS
            counted = database(rig.engine).count_rejections(
                RejectReason.UNKNOWN_STATUS, instance_id=payment.id
            )
            assert counted == 2


def test_a_repeated_answer_is_absorbed(rig: ServiceRig, wallet: str) -> None:
    payment = request_check(rig.engine, waiting(rig, wallet), M)
    pending = next(c for c, e in INQUIRY_STATUS.items() if e == "report_pending")
    inquiry_answers(rig, pending)
    reply = rig.client.inquiry(payment.tx_id or "", payment.reference_no or "", AMOUNT)

    first = apply_answer(rig.engine, payment, reply)
    second = apply_answer(rig.engine, payment, reply)  # the same answer, delivered twice

    assert first.state == second.state != payment.state
    assert second.version == first.version == payment.version + 1
    assert refusals(rig, payment.id)[-1].reason == RejectReason.DUPLICATE

    paid = answer(rig, second, "0")
    again = answer(rig, paid, "0")
    assert (again.state, again.version) == ("paid", paid.version)
    assert [event for event, _ in events(rig, paid.id)].count("confirm_payment") == 1


INQUIRY_FAILURES: dict[str, tuple[Faults, type[ProviderError]]] = {
    "timeout": ([{"timeout": True}, {"timeout": True}], ProviderTimeout),
    "5xx": ([{"status": 502}, {"status": 503}], ProviderUnavailable),
    "9010": ([{"body": refusal("9010", "Invalid merchantToken")}], InvalidToken),
    "html": ([{"body": b"<html>busy</html>"} for _ in "ab"], MalformedResponse),
}


def test_an_inquiry_failure_propagates_and_leaves_the_check_pending(
    rig: ServiceRig, wallet: str, subtests: pytest.Subtests
) -> None:
    for tag, (faults, error) in INQUIRY_FAILURES.items():
        with subtests.test(tag):
            payment = waiting(rig, wallet, tag)
            for fault in faults:
                rig.sim.faults.response(INQUIRY_PATH, **fault)

            with pytest.raises(error):
                rig.service.check_status(payment.id)

            after = rig.engine.get(payment.id)
            assert after.state == "status_check_requested"
            assert after.version == payment.version + 1
            assert after.deadline_at == rig.clock.now() + timedelta(minutes=1)
            assert_settled_only_by_inquiry(rig, payment.id)
