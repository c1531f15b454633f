"""The engine in memory, on SQLite and on PostgreSQL: start, fire, refusals, idempotency, races
and retries."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from fsm import (
    Actor,
    ActorNotAllowed,
    ConcurrentTransition,
    Engine,
    GuardRefused,
    IdempotencyKeyReused,
    InstanceExists,
    InstanceNotFound,
    InvalidInstanceData,
    ManualClock,
    RejectReason,
    RetryPolicy,
    SqlStore,
    StaleEvent,
    TransitionNotAllowed,
    TransitionResult,
    UnknownFlow,
    Verdict,
    replay_instance,
    retry_concurrent,
)
from fsm.flows import FLOWS
from tests.conftest import AnyStore
from tests.fsm.conftest import T0

FLOW = FLOWS["ewallet_payment"]

Step = tuple[str, Actor, dict[str, Any] | None]

REGISTRATION_REPLY = {"tx_id": "TXOVO0001", "reference_no": "ORD-1", "resultCd": "0000"}
"""NICEPAY's answer to the registration, with every field the transition binds."""

TO_PAYMENT_REQUESTED: list[Step] = [
    ("send_registration", Actor.MERCHANT, None),
    ("accept_registration", Actor.PROVIDER_RESPONSE, REGISTRATION_REPLY),
    ("request_payment", Actor.MERCHANT, None),
]
TO_STATUS_CHECK: list[Step] = [
    *TO_PAYMENT_REQUESTED,
    ("push_to_app", Actor.PROVIDER_RESPONSE, None),
    ("check_status", Actor.TIMER, None),
]
TO_PAID: list[Step] = [*TO_STATUS_CHECK, ("confirm_payment", Actor.STATUS_INQUIRY, None)]
TO_FAILED: list[Step] = [*TO_STATUS_CHECK, ("fail_payment", Actor.STATUS_INQUIRY, None)]


@pytest.fixture
def store(any_store: AnyStore) -> AnyStore:
    """Every test here runs in memory, on SQLite and on PostgreSQL."""
    return any_store


def key_for(index: int, event: str) -> str:
    return f"step{index}:{event}"


def drive(engine: Engine, instance_id: str, steps: Sequence[Step]) -> None:
    for index, (event, actor, payload) in enumerate(steps):
        engine.fire(
            instance_id, event, actor=actor, idempotency_key=key_for(index, event), payload=payload
        )


def start_ovo(engine: Engine, instance_id: str = "pay-1") -> str:
    return engine.start("ewallet_payment", instance_id=instance_id, wallet="ovo", amount=150000).id


def assert_utc(moment: datetime | None) -> None:
    assert moment is not None
    assert moment.utcoffset() == timedelta(0)


# --- start -----------------------------------------------------------------------------------

BAD_AMOUNTS: list[Any] = [
    10.5, 150000.0, Decimal("150000"), "10.00", "-5", -5, True, False, "", " 100", "1e5",
    "\uff11\uff12\uff13", 10**18,
]  # fmt: skip


def test_start_accepts_int_or_digit_string_amount(
    engine: Engine, subtests: pytest.Subtests
) -> None:
    accepted: list[tuple[int | str, str]] = [(150000, "150000"), ("150000", "150000"), (0, "0")]
    for amount, stored in accepted:
        with subtests.test(amount=amount):
            payment = engine.start("ewallet_payment", wallet="dana", amount=amount)
            assert payment.amount == stored
            assert engine.get(payment.id).amount == stored


def test_start_refuses_inexact_amount(
    engine: Engine, store: AnyStore, subtests: pytest.Subtests
) -> None:
    for amount in BAD_AMOUNTS:
        with subtests.test(amount=amount), pytest.raises(InvalidInstanceData, match="amount"):
            engine.start("ewallet_payment", wallet="ovo", amount=amount)
    assert store.list_instances() == []


def test_start_refuses_wallet_outside_the_flow(
    engine: Engine, store: AnyStore, subtests: pytest.Subtests
) -> None:
    for wallet in [None, "gopay", "astrapay", "OVO"]:
        with subtests.test(wallet=wallet), pytest.raises(InvalidInstanceData, match="wallet"):
            engine.start("ewallet_payment", wallet=wallet, amount=1000)
    assert store.list_instances() == []


def test_start_accepts_each_wallet_of_the_flow(engine: Engine) -> None:
    for wallet in FLOW.wallets:
        assert engine.start("ewallet_payment", wallet=wallet, amount=1000).wallet == wallet


def test_start_refuses_malformed_currency(
    engine: Engine, store: AnyStore, subtests: pytest.Subtests
) -> None:
    for currency in ["idr", "IDRX", "", "I1R", "ID"]:
        with subtests.test(currency=currency), pytest.raises(InvalidInstanceData, match="currency"):
            engine.start("ewallet_payment", wallet="ovo", amount=1000, currency=currency)
    assert store.list_instances() == []


def test_start_keeps_valid_currency(engine: Engine) -> None:
    payment = engine.start("ewallet_payment", wallet="ovo", amount=1000, currency="USD")
    assert engine.get(payment.id).currency == "USD"


def test_start_refuses_malformed_instance_id(
    engine: Engine, store: AnyStore, subtests: pytest.Subtests
) -> None:
    for instance_id in ["has space", "a/b", "x" * 65, "ünï", "semi;colon"]:
        with (
            subtests.test(instance_id=instance_id),
            pytest.raises(InvalidInstanceData, match="instance id"),
        ):
            engine.start("ewallet_payment", instance_id=instance_id, wallet="ovo", amount=1000)
    assert store.list_instances() == []


def test_start_accepts_well_formed_instance_id(engine: Engine) -> None:
    for instance_id in ["ORD-1.2:3_x", "x" * 64]:
        engine.start("ewallet_payment", instance_id=instance_id, wallet="ovo", amount=1000)
        assert engine.get(instance_id).id == instance_id


def test_start_refuses_malformed_text_fields(
    engine: Engine, store: AnyStore, subtests: pytest.Subtests
) -> None:
    for field in ["reference_no", "tx_id", "mandate"]:
        for value in ["", "r" * 65]:
            fields: dict[str, Any] = {field: value}
            with (
                subtests.test(field=field, value=value),
                pytest.raises(InvalidInstanceData, match=field),
            ):
                engine.start("ewallet_payment", wallet="ovo", amount=1000, **fields)
    assert store.list_instances() == []


def test_start_refuses_duplicate_id(engine: Engine) -> None:
    engine.start("ewallet_payment", instance_id="ORD-7", wallet="ovo", amount=1000)
    with pytest.raises(InstanceExists) as info:
        engine.start("ewallet_payment", instance_id="ORD-7", wallet="dana", amount=99)
    assert info.value.instance_id == "ORD-7"
    kept = engine.get("ORD-7")
    assert (kept.wallet, kept.amount) == ("ovo", "1000")


def test_start_refuses_unknown_flow(engine: Engine, store: AnyStore) -> None:
    with pytest.raises(UnknownFlow) as info:
        engine.start("crypto_payment", wallet="ovo", amount=1000)
    assert "ewallet_payment" in info.value.known
    assert store.list_instances() == []


class NaiveClock:
    def now(self) -> datetime:
        return datetime(2026, 11, 23, 10, 0)  # no zone: WIB? UTC? a guess either way


def test_start_refuses_naive_clock_time(store: AnyStore) -> None:
    with pytest.raises(InvalidInstanceData, match="naive"):
        Engine(store, flows=FLOWS, clock=NaiveClock()).start(
            "ewallet_payment", wallet="ovo", amount=1000
        )
    assert store.list_instances() == []


def test_fire_refuses_naive_clock_time(engine: Engine, store: AnyStore) -> None:
    pid = start_ovo(engine)
    naive = Engine(store, flows=FLOWS, clock=NaiveClock())
    with pytest.raises(InvalidInstanceData, match="naive"):
        naive.fire(pid, "send_registration", actor="merchant", idempotency_key="reg")
    assert engine.get(pid).version == 0
    assert engine.history(pid) == []
    assert engine.rejections(pid) == []


def test_start_stores_initial_state_with_aware_times(engine: Engine, other_store: AnyStore) -> None:
    payment = engine.start(
        "ewallet_payment", instance_id="ORD-1", wallet="dana", amount="150000", reference_no="R-1"
    )
    stored = other_store.get("ORD-1")  # what the database holds
    assert stored == payment
    assert (stored.state, stored.version) == ("checkout_requested", 0)
    assert stored.created_at == stored.updated_at == T0
    assert stored.deadline_at == T0 + timedelta(minutes=15)  # checkout_requested's deadline
    for moment in (stored.created_at, stored.updated_at, stored.deadline_at):
        assert_utc(moment)


# --- fire: applying --------------------------------------------------------------------------


def test_fire_applies_and_persists_the_step(
    engine: Engine, other_store: AnyStore, clock: ManualClock
) -> None:
    pid = start_ovo(engine)
    moment = clock.advance(timedelta(seconds=10))
    result = engine.fire(pid, "send_registration", actor="merchant", idempotency_key="reg")

    assert result.applied
    assert not result.duplicate
    assert result.state == "registration_sent"
    record = result.record
    assert (record.seq, record.source, record.dest) == (
        1,
        "checkout_requested",
        "registration_sent",
    )
    assert (record.actor, record.idempotency_key) == (Actor.MERCHANT, "reg")
    assert record.occurred_at == moment
    assert record.fingerprint == FLOW.fingerprint

    stored = other_store.get(pid)
    assert (stored.state, stored.version) == ("registration_sent", 1)
    assert stored.created_at == T0
    assert stored.updated_at == moment
    assert stored.deadline_at == moment + timedelta(minutes=1)  # registration_sent's deadline
    assert_utc(stored.updated_at)
    assert_utc(stored.deadline_at)
    assert engine.history(pid) == [record]
    assert engine.rejections(pid) == []


@pytest.mark.parametrize(
    ("wallet", "event", "state", "window"),
    [
        ("ovo", "push_to_app", "awaiting_approval", timedelta(seconds=55)),
        ("dana", "redirect_customer", "redirected_to_partner", timedelta(hours=24)),
        ("linkaja", "redirect_customer", "redirected_to_partner", timedelta(minutes=5)),
        ("shopeepay", "redirect_customer", "redirected_to_partner", timedelta(minutes=5)),
    ],
)
def test_fire_sets_deadline_for_the_wallet(
    engine: Engine, clock: ManualClock, wallet: str, event: str, state: str, window: timedelta
) -> None:
    pid = engine.start("ewallet_payment", wallet=wallet, amount=1000).id
    drive(engine, pid, TO_PAYMENT_REQUESTED)
    moment = clock.advance(timedelta(minutes=3))
    engine.fire(pid, event, actor="provider_response", idempotency_key="wallet-step")
    stored = engine.get(pid)
    assert stored.state == state
    assert stored.deadline_at == moment + window
    assert stored.updated_at == moment


def test_fire_into_final_state_clears_deadline(engine: Engine) -> None:
    pid = start_ovo(engine)
    drive(engine, pid, TO_PAID[:-1])
    assert engine.get(pid).deadline_at is not None  # the status check is timed
    drive(engine, pid, TO_PAID[-1:])
    paid = engine.get(pid)
    assert (paid.state, paid.deadline_at) == ("paid", None)  # no timer confirms the order
    engine.fire(pid, "confirm_order", actor="merchant", idempotency_key="order")
    stored = engine.get(pid)
    assert stored.state == "order_confirmed"
    assert stored.deadline_at is None


# --- binds -----------------------------------------------------------------------------------


def test_accept_registration_binds_tx_id(engine: Engine, store: AnyStore) -> None:
    pid = start_ovo(engine)
    engine.fire(pid, "send_registration", actor="merchant", idempotency_key="reg")
    engine.fire(
        pid,
        "accept_registration",
        actor="provider_response",
        idempotency_key="accept",
        payload={**REGISTRATION_REPLY, "tx_id": "TXOVO42"},
    )
    stored = engine.get(pid)
    assert (stored.state, stored.tx_id) == ("registered", "TXOVO42")
    assert [p.id for p in store.find(tx_id="TXOVO42")] == [pid]


def test_accept_registration_without_usable_tx_id_is_refused(
    engine: Engine, subtests: pytest.Subtests
) -> None:
    pid = start_ovo(engine)
    engine.fire(pid, "send_registration", actor="merchant", idempotency_key="reg")
    for tx_id in [None, 12345, "", "T" * 65]:
        payload: dict[str, Any] = {**REGISTRATION_REPLY, "tx_id": tx_id}
        if tx_id is None:
            del payload["tx_id"]
        with subtests.test(tx_id=tx_id):
            with pytest.raises(TransitionNotAllowed) as info:
                engine.fire(
                    pid,
                    "accept_registration",
                    actor="provider_response",
                    idempotency_key=f"accept:{tx_id!r}",
                    payload=payload,
                )
            assert info.value.reason == RejectReason.INVALID_PAYLOAD
            assert "tx_id" in info.value.detail
            rejected = engine.rejections(pid)[-1]
            assert (rejected.reason, rejected.event, rejected.version) == (
                RejectReason.INVALID_PAYLOAD,
                "accept_registration",
                1,
            )
    stored = engine.get(pid)
    assert (stored.state, stored.version, stored.tx_id) == ("registration_sent", 1, None)
    assert len(engine.rejections(pid)) == 4


# --- idempotency -----------------------------------------------------------------------------


def test_same_key_twice_applies_once(engine: Engine, clock: ManualClock) -> None:
    pid = start_ovo(engine)
    first = engine.fire(pid, "send_registration", actor="merchant", idempotency_key="reg")
    later = clock.advance(timedelta(seconds=5))
    again = engine.fire(pid, "send_registration", actor="merchant", idempotency_key="reg")

    assert again.duplicate
    assert not again.applied
    assert again.record == first.record
    assert engine.get(pid).version == 1
    assert engine.history(pid) == [first.record]
    (rejected,) = engine.rejections(pid)
    assert rejected.reason == RejectReason.DUPLICATE
    assert (rejected.event, rejected.idempotency_key) == ("send_registration", "reg")
    assert (rejected.state, rejected.version) == ("registration_sent", 1)
    assert rejected.occurred_at == later


def test_repeated_key_after_state_moved_on_is_still_a_duplicate(engine: Engine) -> None:
    pid = start_ovo(engine)
    drive(engine, pid, TO_PAYMENT_REQUESTED)
    late = engine.fire(
        pid, "send_registration", actor="merchant", idempotency_key=key_for(0, "send_registration")
    )
    assert late.duplicate
    assert late.state == "registration_sent"  # the first outcome, not a new move
    assert engine.get(pid).state == "payment_requested"
    assert engine.get(pid).version == len(TO_PAYMENT_REQUESTED)


def test_same_key_for_another_event_is_refused(engine: Engine) -> None:
    pid = start_ovo(engine)
    engine.fire(pid, "send_registration", actor="merchant", idempotency_key="k")
    with pytest.raises(IdempotencyKeyReused) as info:
        engine.fire(
            pid,
            "accept_registration",
            actor="provider_response",
            idempotency_key="k",
            payload=REGISTRATION_REPLY,
        )
    assert (info.value.key, info.value.original_event) == ("k", "send_registration")
    assert (info.value.state, info.value.event) == ("registration_sent", "accept_registration")
    stored = engine.get(pid)
    assert (stored.state, stored.version, stored.tx_id) == ("registration_sent", 1, None)
    (rejected,) = engine.rejections(pid)
    assert (rejected.reason, rejected.event) == (RejectReason.KEY_REUSED, "accept_registration")


def test_same_key_on_two_instances_is_independent(engine: Engine) -> None:
    first, second = start_ovo(engine, "pay-a"), start_ovo(engine, "pay-b")
    for pid in (first, second):
        result = engine.fire(pid, "send_registration", actor="merchant", idempotency_key="reg")
        assert result.applied
    assert engine.get(first).version == engine.get(second).version == 1


# --- refusals --------------------------------------------------------------------------------

REFUSALS: list[tuple[str, str, str | None, list[Step], str, Actor, type, RejectReason]] = [
    ("unknown event", "ovo", None, [], "teleport", Actor.MERCHANT,
     TransitionNotAllowed, RejectReason.UNKNOWN_EVENT),
    ("not allowed here", "ovo", None, [], "confirm_payment", Actor.STATUS_INQUIRY,
     TransitionNotAllowed, RejectReason.NOT_ALLOWED),
    ("browser may not register", "ovo", None, [], "send_registration", Actor.BROWSER_CALLBACK,
     ActorNotAllowed, RejectReason.WRONG_ACTOR),
    ("notification may not settle", "ovo", None, TO_STATUS_CHECK, "confirm_payment",
     Actor.PROVIDER_NOTIFICATION, ActorNotAllowed, RejectReason.WRONG_ACTOR),
    ("ovo cannot redirect", "ovo", None, TO_PAYMENT_REQUESTED, "redirect_customer",
     Actor.PROVIDER_RESPONSE, GuardRefused, RejectReason.GUARD_REFUSED),
    ("dana cannot push", "dana", None, TO_PAYMENT_REQUESTED, "push_to_app",
     Actor.PROVIDER_RESPONSE, GuardRefused, RejectReason.GUARD_REFUSED),
    ("notification after paid", "ovo", None, TO_PAID, "receive_notification",
     Actor.PROVIDER_NOTIFICATION, StaleEvent, RejectReason.STALE),
    ("late paid after failed", "ovo", None, TO_FAILED, "confirm_payment",
     Actor.STATUS_INQUIRY, StaleEvent, RejectReason.STALE),
]  # fmt: skip


@pytest.mark.parametrize(
    ("wallet", "mandate", "setup", "event", "actor", "error_type", "reason"),
    [case[1:] for case in REFUSALS],
    ids=[case[0] for case in REFUSALS],
)
def test_refused_event_is_recorded_and_changes_nothing(
    engine: Engine,
    clock: ManualClock,
    wallet: str,
    mandate: str | None,
    setup: list[Step],
    event: str,
    actor: Actor,
    error_type: type,
    reason: RejectReason,
) -> None:
    pid = engine.start("ewallet_payment", wallet=wallet, amount=1000, mandate=mandate).id
    drive(engine, pid, setup)
    before, history = engine.get(pid), engine.history(pid)
    moment = clock.advance(timedelta(seconds=30))

    with pytest.raises(TransitionNotAllowed) as info:
        engine.fire(pid, event, actor=actor, idempotency_key="refused", payload={"n": 1})

    error = info.value
    assert type(error) is error_type
    assert error.reason == reason
    assert (error.instance_id, error.state, error.event) == (pid, before.state, event)
    assert engine.get(pid) == before
    assert engine.history(pid) == history
    (rejected,) = engine.rejections(pid)
    assert (rejected.event, rejected.state, rejected.version) == (
        event,
        before.state,
        before.version,
    )
    assert (rejected.actor, rejected.idempotency_key, rejected.reason) == (actor, "refused", reason)
    assert rejected.detail == error.detail
    assert rejected.payload == {"n": 1}
    assert rejected.occurred_at == moment


def test_astrapay_payment_needs_a_mandate(engine: Engine) -> None:
    without = engine.start("astrapay_payment", wallet="astrapay", amount=50000).id
    with pytest.raises(GuardRefused) as info:
        engine.fire(without, "submit_link_initiate", actor="merchant", idempotency_key="submit")
    assert "has_mandate" in info.value.detail
    assert engine.get(without).state == "checkout_requested"

    linked = engine.start("astrapay_payment", wallet="astrapay", amount=50000, mandate="MDT-1").id
    result = engine.fire(linked, "submit_link_initiate", actor="merchant", idempotency_key="s")
    assert result.state == "link_initiate_submitted"


def test_refused_key_may_be_used_again_once_allowed(engine: Engine) -> None:
    pid = start_ovo(engine)
    with pytest.raises(TransitionNotAllowed):
        engine.fire(pid, "request_payment", actor="merchant", idempotency_key="pay")
    drive(engine, pid, TO_PAYMENT_REQUESTED[:2])
    assert engine.fire(pid, "request_payment", actor="merchant", idempotency_key="pay").applied


def test_settled_payment_never_returns_to_an_unsettled_state(engine: Engine) -> None:
    pid = start_ovo(engine)
    drive(engine, pid, TO_PAID)
    moved, refused = [], set()
    for event in FLOW.events:
        for actor in Actor:
            key = f"late:{event}:{actor}"
            try:
                payload = {"refunded_amount": "1000"}  # what a void or refund must carry
                result = engine.fire(pid, event, actor=actor, idempotency_key=key, payload=payload)
            except TransitionNotAllowed as error:
                refused.add(error.reason)
            else:
                moved.append(result.state)
            assert FLOW.state(engine.get(pid).state).kind.settled, (event, actor)
    assert refused == {RejectReason.STALE, RejectReason.WRONG_ACTOR}
    assert moved  # something did apply (void or refund), and it stayed settled
    assert all(FLOW.state(state).kind.settled for state in moved)


# --- allowed_events --------------------------------------------------------------------------


WAITING_HINTS = ("receive_notification", "return_from_partner", "check_status")


@pytest.mark.parametrize(
    ("wallet", "actor", "expected"),
    [
        ("ovo", None, ("push_to_app", *WAITING_HINTS)),
        ("dana", None, ("redirect_customer", *WAITING_HINTS)),
        ("ovo", "merchant", ("push_to_app", "check_status")),
        ("dana", Actor.PROVIDER_RESPONSE, ("redirect_customer",)),
        ("ovo", "provider_notification", ("receive_notification",)),
        ("ovo", "status_inquiry", ()),
    ],
)  # fmt: skip
def test_allowed_events_follow_guards_and_actor(
    engine: Engine, wallet: str, actor: str | None, expected: tuple[str, ...]
) -> None:
    pid = engine.start("ewallet_payment", wallet=wallet, amount=1000).id
    drive(engine, pid, TO_PAYMENT_REQUESTED)
    assert engine.allowed_events(pid, actor) == expected


def test_allowed_events_after_settlement(engine: Engine) -> None:
    pid = start_ovo(engine)
    drive(engine, pid, TO_PAID)
    assert engine.allowed_events(pid) == (
        "void_payment",
        "refund_payment",
        "confirm_order",
        "request_refund",
    )
    assert engine.allowed_events(pid, "merchant") == ("confirm_order", "request_refund")
    assert engine.allowed_events(pid, "browser_callback") == ()


def test_allowed_events_depend_on_mandate(engine: Engine) -> None:
    without = engine.start("astrapay_payment", wallet="astrapay", amount=1).id
    linked = engine.start("astrapay_payment", wallet="astrapay", amount=1, mandate="M-1").id
    assert engine.allowed_events(without) == ("abandon_checkout",)
    assert engine.allowed_events(linked) == ("submit_link_initiate", "abandon_checkout")


def test_allowed_events_refuses_unknown_actor(engine: Engine) -> None:
    pid = start_ovo(engine)
    with pytest.raises(InvalidInstanceData, match="robot"):
        engine.allowed_events(pid, "robot")


# --- payloads and bad input ------------------------------------------------------------------

SECRETS = ("mk-VERY-SECRET-1", "tok-VERY-SECRET-2", "api-VERY-SECRET-3")


def secret_payload() -> dict[str, Any]:
    return {
        "merchantKey": SECRETS[0],
        "resultCd": "0000",
        "tx_id": "TXOVO77",
        "reference_no": "ORD-77",
        "request": {"merchantToken": SECRETS[1], "items": [{"api_key": SECRETS[2], "qty": 2}]},
    }


REDACTED_PAYLOAD = {
    "merchantKey": "[redacted]",
    "resultCd": "0000",
    "tx_id": "TXOVO77",
    "reference_no": "ORD-77",
    "request": {"merchantToken": "[redacted]", "items": [{"api_key": "[redacted]", "qty": 2}]},
}


def test_secrets_are_redacted_in_stored_payloads(engine: Engine, store: AnyStore) -> None:
    pid = start_ovo(engine)
    engine.fire(pid, "send_registration", actor="merchant", idempotency_key="r")
    engine.fire(
        pid, "accept_registration", actor="provider_response", idempotency_key="a",
        payload=secret_payload(),
    )  # fmt: skip
    with pytest.raises(TransitionNotAllowed):
        engine.fire(pid, "confirm_payment", actor="operator", idempotency_key="x",
                    payload=secret_payload())  # fmt: skip

    assert engine.history(pid)[1].payload == REDACTED_PAYLOAD
    assert engine.get(pid).tx_id == "TXOVO77"  # ordinary fields survive
    assert engine.rejections(pid)[0].payload == REDACTED_PAYLOAD
    if not isinstance(store, SqlStore):
        return  # in memory the records read back are what is stored
    with store.engine.connect() as conn:
        stored = [
            str(value)
            for table in ("transition_log", "rejected_event", "flow_instance")
            for row in conn.execute(text(f"select * from {table}"))  # noqa: S608 - fixed names
            for value in row
        ]
    assert not [value for value in stored if any(secret in value for secret in SECRETS)]


NON_JSON_PAYLOADS: dict[str, Any] = {
    "datetime": {"at": datetime(2026, 1, 1, tzinfo=UTC)},
    "nan": {"ratio": float("nan")},
    "set": {"tags": {1, 2}},
    "bytes": {"raw": b"bytes"},
    "list": ["not", "a", "mapping"],
    "too-large": {"big": "x" * 70_000},
}


def test_non_json_payload_is_refused_and_not_recorded(
    engine: Engine, subtests: pytest.Subtests
) -> None:
    pid = start_ovo(engine)
    for name, payload in NON_JSON_PAYLOADS.items():
        with subtests.test(name), pytest.raises(InvalidInstanceData, match="payload"):
            engine.fire(
                pid, "send_registration", actor="merchant", idempotency_key="k", payload=payload
            )
    assert engine.get(pid).version == 0
    assert engine.history(pid) == []
    assert engine.rejections(pid) == []


def test_unknown_actor_is_refused_and_not_recorded(
    engine: Engine, subtests: pytest.Subtests
) -> None:
    pid = start_ovo(engine)
    for actor in ["robot", "", "MERCHANT"]:
        with subtests.test(actor=actor), pytest.raises(InvalidInstanceData, match="actor"):
            engine.fire(pid, "send_registration", actor=actor, idempotency_key="k")
    assert engine.get(pid).version == 0
    assert engine.rejections(pid) == []


def test_malformed_idempotency_key_is_refused(engine: Engine, subtests: pytest.Subtests) -> None:
    pid = start_ovo(engine)
    for key in ["", "k" * 201]:
        with subtests.test(key=key), pytest.raises(InvalidInstanceData, match="idempotency key"):
            engine.fire(pid, "send_registration", actor="merchant", idempotency_key=key)
    assert engine.get(pid).version == 0
    assert engine.rejections(pid) == []


def test_unknown_instance_is_not_found(engine: Engine) -> None:
    for call in (
        lambda: engine.fire("ghost", "send_registration", actor="merchant", idempotency_key="k"),
        lambda: engine.get("ghost"),
        lambda: engine.allowed_events("ghost"),
    ):
        with pytest.raises(InstanceNotFound) as info:
            call()
        assert info.value.instance_id == "ghost"
    assert engine.rejections("ghost") == []
    assert engine.history("ghost") == []


# --- races between engines -------------------------------------------------------------------

THREADS = 8


def run_threads(work: Callable[[int], object]) -> list[object]:
    """Run ``work(n)`` on THREADS threads released together; each result or exception."""
    outcomes: list[object] = [None] * THREADS
    barrier = threading.Barrier(THREADS)

    def target(n: int) -> None:
        try:
            barrier.wait(timeout=10)
            outcomes[n] = work(n)
        except Exception as error:  # collected and checked by the test
            outcomes[n] = error

    threads = [threading.Thread(target=target, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


@pytest.fixture
def two_engines(store: AnyStore, other_store: AnyStore, clock: ManualClock) -> list[Engine]:
    return [Engine(store, flows=FLOWS, clock=clock), Engine(other_store, flows=FLOWS, clock=clock)]


def test_racing_engines_apply_each_step_once(two_engines: list[Engine]) -> None:
    pid = start_ovo(two_engines[0])

    def walk(n: int) -> list[TransitionResult]:
        engine = two_engines[n % 2]
        return [
            engine.fire_with_retry(
                pid, event, actor=actor, idempotency_key=key_for(i, event), payload=payload
            )
            for i, (event, actor, payload) in enumerate(TO_PAID)
        ]

    outcomes = run_threads(walk)
    walks = [outcome for outcome in outcomes if isinstance(outcome, list)]
    assert len(walks) == THREADS, outcomes

    engine = two_engines[1]
    history = engine.history(pid)
    assert [(r.seq, r.event) for r in history] == [
        (i + 1, event) for i, (event, _, _) in enumerate(TO_PAID)
    ]
    for index, record in enumerate(history):
        step_results = [walk[index] for walk in walks]
        assert all(result.record == record for result in step_results)
        assert sum(result.applied for result in step_results) == 1
    stored = engine.get(pid)
    assert (stored.state, stored.version) == ("paid", len(history))
    rejected = engine.rejections(pid)
    assert {r.reason for r in rejected} == {RejectReason.DUPLICATE}
    assert len(rejected) == (THREADS - 1) * len(TO_PAID)
    assert replay_instance(FLOW, stored, history).verdict == Verdict.CONSISTENT


def test_racing_settlements_settle_exactly_once(two_engines: list[Engine]) -> None:
    pid = start_ovo(two_engines[0])
    drive(two_engines[0], pid, TO_STATUS_CHECK)
    competing = ("confirm_payment", "fail_payment")

    def settle(n: int) -> TransitionResult:
        event = competing[n % 2]
        return two_engines[(n // 2) % 2].fire_with_retry(
            pid, event, actor="status_inquiry", idempotency_key=f"inquiry:{event}"
        )

    outcomes = run_threads(settle)
    engine = two_engines[0]
    history = engine.history(pid)
    assert len(history) == len(TO_STATUS_CHECK) + 1
    winner = history[-1]
    assert winner.event in competing
    won = [o for n, o in enumerate(outcomes) if competing[n % 2] == winner.event]
    lost = [o for n, o in enumerate(outcomes) if competing[n % 2] != winner.event]
    assert all(isinstance(o, TransitionResult) and o.record == winner for o in won), won
    assert sum(isinstance(o, TransitionResult) and o.applied for o in won) == 1
    assert all(isinstance(o, StaleEvent) for o in lost), lost

    rejected = engine.rejections(pid)
    duplicates = [r for r in rejected if r.reason == RejectReason.DUPLICATE]
    stale = [r for r in rejected if r.reason == RejectReason.STALE]
    assert len(duplicates) == len(won) - 1
    assert len(stale) == len(lost)
    assert len(rejected) == len(duplicates) + len(stale)
    stored = engine.get(pid)
    assert stored.version == len(history)
    assert replay_instance(FLOW, stored, history).verdict == Verdict.CONSISTENT


# --- bounded retry ---------------------------------------------------------------------------


def lost_race() -> ConcurrentTransition:
    return ConcurrentTransition("pay-1", "registered", "request_payment", 2)


def test_retry_gives_up_after_policy_attempts() -> None:
    policy = RetryPolicy(attempts=5, base_delay=0.01, max_delay=0.03)
    raised: list[ConcurrentTransition] = []
    sleeps: list[float] = []

    def always_loses() -> None:
        raised.append(lost_race())
        raise raised[-1]

    with pytest.raises(ConcurrentTransition) as info:
        retry_concurrent(always_loses, policy, sleep=sleeps.append)
    assert len(raised) == policy.attempts
    assert info.value is raised[-1]
    assert len(sleeps) == policy.attempts - 1
    for attempt, delay in enumerate(sleeps):
        assert 0 <= delay <= min(policy.max_delay, policy.base_delay * 2**attempt)


def test_retry_returns_once_the_race_is_won() -> None:
    calls: list[int] = []
    sleeps: list[float] = []

    def wins_third_time() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise lost_race()
        return "applied"

    assert (
        retry_concurrent(wins_third_time, RetryPolicy(attempts=4), sleep=sleeps.append) == "applied"
    )
    assert len(calls) == 3
    assert len(sleeps) == 2


def test_retry_does_not_retry_other_errors() -> None:
    calls: list[int] = []
    sleeps: list[float] = []

    def refused() -> None:
        calls.append(1)
        raise StaleEvent("pay-1", "paid", "confirm_payment")

    with pytest.raises(StaleEvent):
        retry_concurrent(refused, RetryPolicy(attempts=5), sleep=sleeps.append)
    assert calls == [1]
    assert sleeps == []


def test_retry_with_single_attempt_never_sleeps() -> None:
    sleeps: list[float] = []
    calls: list[int] = []

    def always_loses() -> None:
        calls.append(1)
        raise lost_race()

    with pytest.raises(ConcurrentTransition):
        retry_concurrent(always_loses, RetryPolicy(attempts=1), sleep=sleeps.append)
    assert (len(calls), sleeps) == (1, [])


@pytest.mark.parametrize(
    ("attempts", "base", "ceiling"), [(0, 0.002, 0.2), (3, -0.1, 0.2), (3, 0.5, 0.1)]
)
def test_a_retry_policy_refuses_values_that_make_no_sense(
    attempts: int, base: float, ceiling: float
) -> None:
    with pytest.raises(ValueError, match=r"attempt|delays"):
        RetryPolicy(attempts=attempts, base_delay=base, max_delay=ceiling)
