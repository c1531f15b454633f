"""Random event sequences against the engine: refusals, duplicates, reorderings, late arrivals.

A Hypothesis state machine starts a few payments of the built-in flows and throws events at them:
any event of the flow (and one the flow does not know), fired by any actor, under fresh or
repeated idempotency keys, and earlier deliveries sent again later. A small oracle derived from
the flow definition predicts each outcome, and after every step the stored rows must replay to the
stored state, the log must hold exactly the applied steps, and every refusal exactly one row.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import create_engine, text

from fsm import (
    Actor,
    ActorNotAllowed,
    Engine,
    FlowDefinition,
    GuardContext,
    GuardRefused,
    IdempotencyKeyReused,
    Instance,
    MemoryStore,
    RejectReason,
    SqlStore,
    StaleEvent,
    TransitionNotAllowed,
    TransitionRecord,
    TransitionSpec,
    Verdict,
    replay_instance,
)
from fsm.flows import FLOWS
from tests.conftest import AnyStore, postgres_url_or_skip

UNKNOWN_EVENT = "no_such_event"
SECRET_FIELD = "merchantToken"

Opener = Callable[[], tuple[AnyStore, Callable[[], None]]]
"""Gives a fresh store and the function that closes and removes it afterwards."""


Step = tuple[str, str]

_A = Actor
_REGISTER: tuple[Step, ...] = (
    ("send_registration", _A.MERCHANT),
    ("accept_registration", _A.PROVIDER_RESPONSE),
    ("request_payment", _A.MERCHANT),
)
_SETTLE: tuple[Step, ...] = (
    ("receive_notification", _A.PROVIDER_NOTIFICATION),
    ("check_status", _A.MERCHANT),
    ("confirm_payment", _A.STATUS_INQUIRY),
    ("confirm_order", _A.MERCHANT),
    ("refund_payment", _A.OPERATOR),
)
PUSH_SCRIPT = (*_REGISTER, ("push_to_app", _A.PROVIDER_RESPONSE), *_SETTLE)
REDIRECT_SCRIPT = (*_REGISTER, ("redirect_customer", _A.MERCHANT), *_SETTLE)
ASTRAPAY_SCRIPT: tuple[Step, ...] = (
    ("submit_link_initiate", _A.MERCHANT),
    ("receive_payment_page", _A.PROVIDER_RESPONSE),
    ("redirect_customer", _A.MERCHANT),
    ("receive_callback", _A.BROWSER_CALLBACK),
    ("check_status", _A.MERCHANT),
    ("confirm_payment", _A.STATUS_INQUIRY),
    ("update_customer", _A.MERCHANT),
    ("refund_payment", _A.STATUS_INQUIRY),
)
LINK_SCRIPT: tuple[Step, ...] = (
    ("receive_partner_redirect", _A.PROVIDER_RESPONSE),
    ("show_registration_page", _A.BROWSER_CALLBACK),
    ("begin_registration", _A.BROWSER_CALLBACK),
    ("confirm_link", _A.PROVIDER_NOTIFICATION),
    ("unlink", _A.MERCHANT),
)


@dataclass(frozen=True)
class PaymentKind:
    """One kind of payment the machine may start, and the path that settles it."""

    label: str
    flow: str
    wallet: str
    script: tuple[Step, ...]
    mandate: str | None = None
    amount: str | None = "150000"


KINDS = (
    PaymentKind("ovo", "ewallet_payment", "ovo", PUSH_SCRIPT),
    PaymentKind("dana", "ewallet_payment", "dana", REDIRECT_SCRIPT),
    PaymentKind("linkaja", "ewallet_payment", "linkaja", REDIRECT_SCRIPT),
    PaymentKind("shopeepay", "ewallet_payment", "shopeepay", REDIRECT_SCRIPT),
    PaymentKind(
        "astrapay-mandate", "astrapay_payment", "astrapay", ASTRAPAY_SCRIPT, "MANDATE-0001"
    ),
    PaymentKind("astrapay-no-mandate", "astrapay_payment", "astrapay", ASTRAPAY_SCRIPT),
    PaymentKind("astrapay-link", "astrapay_link", "astrapay", LINK_SCRIPT, amount=None),
)

PAYLOADS: tuple[Mapping[str, Any], ...] = (
    {},
    {"status": "0"},
    {"tx_id": "IONPAYTEST0100000001"},
    {"mandate": "MANDATE-0002"},
    {"tx_id": "IONPAYTEST0100000002", "mandate": "MANDATE-0003"},
    {"tx_id": ""},  # not bindable: empty
    {"mandate": "M" * 65},  # not bindable: too long
    {SECRET_FIELD: "d0e1f2", "status": "9"},
)
_BIND_ALL = {
    "tx_id": "IONPAYTEST0100000003",
    "mandate": "MANDATE-0004",
    "reference_no": "ORD-9",
    "refunded_amount": "50000",
}
BINDING_PAYLOADS: tuple[Mapping[str, Any], ...] = (
    _BIND_ALL,
    {**_BIND_ALL, "tx_id": "IONPAYTEST0100000004", SECRET_FIELD: "a1b2"},
    {"tx_id": "", "mandate": 7},  # binds nothing: refused as an invalid payload
    {**_BIND_ALL, "refunded_amount": "50.000"},  # not an exact amount: not bound
)


def _own_reference(payload: Mapping[str, Any], tracked: Tracked) -> Mapping[str, Any]:
    """``payload`` binding a reference of the payment's own: one live payment per reference."""
    if "reference_no" not in payload:
        return payload
    return {**payload, "reference_no": f"ORD-9-{tracked.kind.label}"}


_REFUSAL_TYPES: Mapping[RejectReason, type[TransitionNotAllowed]] = {
    RejectReason.WRONG_ACTOR: ActorNotAllowed,
    RejectReason.STALE: StaleEvent,
    RejectReason.GUARD_REFUSED: GuardRefused,
}


@dataclass(frozen=True)
class Outcome:
    """What one ``fire`` did: ``applied`` (by ``spec``), ``duplicate``, or ``refused``."""

    kind: str
    reason: RejectReason | None = None
    spec: TransitionSpec | None = None

    @property
    def dest(self) -> str | None:
        return None if self.spec is None else self.spec.dest


@dataclass(frozen=True)
class Delivery:
    """One call as it was made, kept for sending again later."""

    payment: int
    event: str
    actor: str
    key: str
    payload: Mapping[str, Any]


@dataclass
class Tracked:
    """The model of one payment, updated only from predicted outcomes."""

    kind: PaymentKind
    id: str
    flow: FlowDefinition
    state: str
    log: list[tuple[str, str, str, str]] = field(default_factory=list)
    """``(event, source, dest, key)`` of every applied step."""
    keys: dict[str, str] = field(default_factory=dict)
    """Key -> event, for every key in the log."""
    sent_keys: list[str] = field(default_factory=list)
    rejected: int = 0
    ever_settled: bool = False
    script_position: int = 0


def _bindable(name: str, value: Any) -> bool:
    if not (isinstance(value, str) and 0 < len(value) <= 64):
        return False
    return name != "refunded_amount" or (value.isascii() and value.isdigit() and len(value) <= 18)


def predict(
    flow: FlowDefinition,
    instance: Instance,
    keys: Mapping[str, str],
    event: str,
    actor: str,
    key: str,
    payload: Mapping[str, Any],
) -> Outcome:
    """The outcome the flow definition calls for, worked out without the engine."""
    if key in keys:
        if keys[key] == event:
            return Outcome("duplicate")
        return Outcome("refused", RejectReason.KEY_REUSED)
    candidates = flow.candidates(instance.state, event)
    if not candidates:
        if event not in flow.events:
            return Outcome("refused", RejectReason.UNKNOWN_EVENT)
        if flow.state(instance.state).kind.settled:
            return Outcome("refused", RejectReason.STALE)
        return Outcome("refused", RejectReason.NOT_ALLOWED)
    if not any(actor in spec.actors for spec in candidates):
        return Outcome("refused", RejectReason.WRONG_ACTOR)
    ctx = GuardContext(instance=instance, actor=actor, payload=payload)
    passing = [
        spec
        for spec in candidates
        if actor in spec.actors and (spec.guard is None or spec.guard.check(ctx))
    ]
    if not passing:
        return Outcome("refused", RejectReason.GUARD_REFUSED)
    spec = passing[0]
    if not all(_bindable(n, payload.get(n)) or getattr(instance, n) for n in spec.binds):
        return Outcome("refused", RejectReason.INVALID_PAYLOAD)
    return Outcome("applied", spec=spec)


def _stored_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {k: "[redacted]" if k == SECRET_FIELD else v for k, v in payload.items()}


def _settled(flow: FlowDefinition, state: str) -> bool:
    return flow.state(state).kind.settled


class EngineMachine(RuleBasedStateMachine):
    """Random deliveries to a few payments of the built-in flows."""

    @classmethod
    def open_store(cls) -> tuple[AnyStore, Callable[[], None]]:
        """A fresh store and how to remove it; each test's subclass says where."""
        raise NotImplementedError

    def __init__(self) -> None:
        super().__init__()
        self.store, self._remove = self.open_store()
        self.engine = Engine(self.store, flows=FLOWS)
        self.payments: list[Tracked] = []
        self.deliveries: list[Delivery] = []
        self._keys = itertools.count(1)

    def teardown(self) -> None:
        self._remove()

    @initialize(kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=3, unique=True))
    def start_payments(self, kinds: list[PaymentKind]) -> None:
        for kind in kinds:
            instance = self.engine.start(
                kind.flow,
                instance_id=f"{kind.label}-{uuid.uuid4().hex[:8]}",
                wallet=kind.wallet,
                amount=kind.amount,
                reference_no=f"ORD-{kind.label}",
                mandate=kind.mandate,
            )
            assert instance.version == 0
            self.payments.append(Tracked(kind, instance.id, FLOWS[kind.flow], instance.state))

    def _fresh_key(self) -> str:
        return f"key-{next(self._keys)}"

    def _pick(self, which: int) -> tuple[int, Tracked]:
        index = which % len(self.payments)
        return index, self.payments[index]

    @rule(
        which=st.integers(0, 5),
        event_index=st.integers(0, 40),
        actor=st.sampled_from(list(Actor)),
        key_choice=st.none() | st.integers(0, 50),
        payload=st.sampled_from(PAYLOADS),
    )
    def fire_anything(
        self,
        which: int,
        event_index: int,
        actor: str,
        key_choice: int | None,
        payload: Mapping[str, Any],
    ) -> None:
        """Any event of the flow, or an unknown one, by anyone, under a new or a used key."""
        index, tracked = self._pick(which)
        events = (*tracked.flow.events, UNKNOWN_EVENT)
        event = events[event_index % len(events)]
        if key_choice is None or not tracked.sent_keys:
            key = self._fresh_key()
        else:
            key = tracked.sent_keys[key_choice % len(tracked.sent_keys)]
        self._deliver(index, event, actor, key, payload)

    @rule(
        which=st.integers(0, 5),
        choices=st.lists(st.integers(0, 100), min_size=1, max_size=6),
        payload=st.sampled_from(BINDING_PAYLOADS),
    )
    def advance(self, which: int, choices: list[int], payload: Mapping[str, Any]) -> None:
        """A run of events the current state declares, by actors allowed to fire them."""
        index, tracked = self._pick(which)
        for choice in choices:
            state = tracked.state
            options = sorted(
                {
                    (spec.event, actor)
                    for event in tracked.flow.events_from(state)
                    for spec in tracked.flow.candidates(state, event)
                    for actor in spec.actors
                }
            )
            if not options:  # a final state without a reversal: only late arrivals remain
                options = [(tracked.flow.events[choice % len(tracked.flow.events)], Actor.OPERATOR)]
            event, actor = options[choice % len(options)]
            self._deliver(index, event, actor, self._fresh_key(), payload)

    @rule(
        which=st.integers(0, 5), count=st.integers(1, 10), payload=st.sampled_from(BINDING_PAYLOADS)
    )
    def follow_script(self, which: int, count: int, payload: Mapping[str, Any]) -> None:
        """The next steps of the path that settles this kind of payment, then reverses it."""
        index, tracked = self._pick(which)
        script = tracked.kind.script
        for _ in range(count):
            if tracked.script_position >= len(script):
                return
            event, actor = script[tracked.script_position]
            tracked.script_position += 1
            self._deliver(index, event, actor, self._fresh_key(), payload)

    @precondition(lambda self: bool(self.deliveries))
    @rule(pick=st.integers(0, 10_000))
    def redeliver(self, pick: int) -> None:
        """An earlier call sent again, unchanged: a retry, a reordering or a late arrival."""
        old = self.deliveries[pick % len(self.deliveries)]
        self._deliver(old.payment, old.event, old.actor, old.key, old.payload)

    def _deliver(
        self, index: int, event: str, actor: str, key: str, payload: Mapping[str, Any]
    ) -> None:
        tracked = self.payments[index]
        payload = _own_reference(payload, tracked)
        before = self.store.get(tracked.id)
        log_before = self.store.history(tracked.id)
        refused_before = self.store.rejections(tracked.id)
        expected = predict(tracked.flow, before, tracked.keys, event, actor, key, payload)
        outcome, returned = self._fire(tracked, event, actor, key, payload)
        assert outcome.kind == expected.kind, (event, actor, key, before.state)
        assert outcome.reason == expected.reason, (event, actor, key, before.state)
        self.deliveries.append(Delivery(index, event, actor, key, payload))
        tracked.sent_keys.append(key)
        log_after = self.store.history(tracked.id)
        refused_after = self.store.rejections(tracked.id)
        if expected.kind == "applied":
            assert expected.spec is not None
            assert returned is not None
            assert returned.dest == expected.dest
            assert refused_after == refused_before, "an applied event added a rejected row"
            assert log_after[:-1] == log_before
            assert len(log_after) == len(log_before) + 1, "an applied event added no log row"
            self._check_applied(tracked, before, log_after[-1], returned, expected.spec, payload)
            return
        assert log_after == log_before, f"a {expected.kind} call added a log row"
        assert self.store.get(tracked.id) == before, f"a {expected.kind} call changed the row"
        assert refused_after[:-1] == refused_before
        assert len(refused_after) == len(refused_before) + 1, "a refusal was not recorded once"
        row = refused_after[-1]
        reason = RejectReason.DUPLICATE if expected.kind == "duplicate" else expected.reason
        assert (row.event, row.state, row.version, row.actor) == (
            event,
            before.state,
            before.version,
            actor,
        )
        assert (row.idempotency_key, row.reason) == (key, reason)
        assert row.payload == _stored_payload(payload)
        assert "Actor." not in row.detail, row.detail  # actors are named, not repr'd
        tracked.rejected += 1
        if expected.kind == "duplicate":
            first = next(r for r in log_before if r.idempotency_key == key)
            assert returned == first, "a duplicate did not return the first outcome"

    def _fire(
        self,
        tracked: Tracked,
        event: str,
        actor: str,
        key: str,
        payload: Mapping[str, Any],
    ) -> tuple[Outcome, TransitionRecord | None]:
        try:
            result = self.engine.fire(
                tracked.id, event, actor=actor, idempotency_key=key, payload=payload
            )
        except (IdempotencyKeyReused, TransitionNotAllowed) as exc:
            return self._refusal(tracked, exc, event, key), None
        if result.duplicate:
            return Outcome("duplicate"), result.record
        return Outcome("applied"), result.record

    def _refusal(
        self,
        tracked: Tracked,
        error: IdempotencyKeyReused | TransitionNotAllowed,
        event: str,
        key: str,
    ) -> Outcome:
        assert (error.instance_id, error.state, error.event) == (tracked.id, tracked.state, event)
        if isinstance(error, IdempotencyKeyReused):
            assert (error.key, error.original_event) == (key, tracked.keys[key])
            return Outcome("refused", RejectReason.KEY_REUSED)
        assert type(error) is _REFUSAL_TYPES.get(error.reason, TransitionNotAllowed)
        return Outcome("refused", error.reason)

    def _check_applied(
        self,
        tracked: Tracked,
        before: Instance,
        stored: TransitionRecord,
        returned: TransitionRecord,
        spec: TransitionSpec,
        payload: Mapping[str, Any],
    ) -> None:
        assert stored == returned, "the stored log row differs from the returned record"
        assert (stored.seq, stored.source, stored.dest) == (
            before.version + 1,
            before.state,
            spec.dest,
        )
        assert stored.fingerprint == tracked.flow.fingerprint
        assert stored.payload == _stored_payload(payload)
        after = self.store.get(tracked.id)
        for name in spec.binds:
            bindable = _bindable(name, payload.get(name))
            expected = payload[name] if bindable else getattr(before, name)
            assert getattr(after, name) == expected, f"{name} was not bound"
        deadline = tracked.flow.state(spec.dest).deadline
        expected_deadline = (
            None if deadline is None else stored.occurred_at + deadline.for_wallet(after.wallet)
        )
        assert after.deadline_at == expected_deadline
        tracked.log.append((stored.event, stored.source, stored.dest, stored.idempotency_key))
        tracked.keys[stored.idempotency_key] = stored.event
        tracked.state = stored.dest
        tracked.ever_settled = tracked.ever_settled or _settled(tracked.flow, stored.dest)

    @invariant()
    def stored_state_is_the_replayed_log(self) -> None:
        for tracked in self.payments:
            instance = self.store.get(tracked.id)
            history = self.store.history(tracked.id)
            result = replay_instance(tracked.flow, instance, history)
            assert result.verdict is Verdict.CONSISTENT, result.divergence
            assert result.state == instance.state == tracked.state
            assert instance.version == len(history) == result.applied
            assert [r.seq for r in history] == list(range(1, len(history) + 1))
            logged = [(r.event, r.source, r.dest, r.idempotency_key) for r in history]
            assert logged == tracked.log
            assert len(self.store.rejections(tracked.id)) == tracked.rejected

    @invariant()
    def settlement_happens_once_and_sticks(self) -> None:
        for tracked in self.payments:
            flow = tracked.flow
            history = self.store.history(tracked.id)
            settling = [
                r for r in history if not _settled(flow, r.source) and _settled(flow, r.dest)
            ]
            assert len(settling) <= 1, f"{tracked.id} settled {len(settling)} times"
            if settling:
                after = history[settling[0].seq :]
                assert all(_settled(flow, r.dest) for r in after), "a settled payment regressed"
            if tracked.ever_settled:
                assert _settled(flow, self.store.get(tracked.id).state)


def _run(opener: Opener, *, examples: int, steps: int) -> None:
    class Machine(EngineMachine):
        @classmethod
        def open_store(cls) -> tuple[AnyStore, Callable[[], None]]:
            return opener()

    run_state_machine_as_test(
        Machine,
        settings=settings(max_examples=examples, stateful_step_count=steps, deadline=None),
    )


def _sql_store(
    url: str, remove: Callable[[], None] = lambda: None
) -> tuple[AnyStore, Callable[[], None]]:
    store = SqlStore(url, sqlite_synchronous="OFF")
    store.create_schema()

    def close() -> None:
        store.dispose()
        remove()

    return store, close


def test_random_deliveries_in_memory() -> None:
    _run(lambda: (MemoryStore(), lambda: None), examples=60, steps=30)


def test_random_deliveries_on_sqlite(tmp_path: Path) -> None:
    numbers = itertools.count(1)

    def opener() -> tuple[AnyStore, Callable[[], None]]:
        return _sql_store(f"sqlite:///{tmp_path / f'machine-{next(numbers)}.sqlite3'}")

    _run(opener, examples=60, steps=30)


@pytest.mark.postgres
def test_random_deliveries_on_postgres() -> None:
    base = postgres_url_or_skip()
    admin = create_engine(base)

    def opener() -> tuple[AnyStore, Callable[[], None]]:
        schema = f"t_{uuid.uuid4().hex[:12]}"
        with admin.begin() as conn:
            conn.execute(text(f'create schema "{schema}"'))

        def drop() -> None:
            with admin.begin() as conn:
                conn.execute(text(f'drop schema "{schema}" cascade'))

        return _sql_store(f"{base}?options=-csearch_path%3D{schema}", drop)

    try:
        _run(opener, examples=12, steps=15)
    finally:
        admin.dispose()
