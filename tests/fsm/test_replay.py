"""Replay: engine-made logs fold back to the stored state; every kind of tampering is caught."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import text

from fsm import (
    Actor,
    ChainStatus,
    Engine,
    Instance,
    InvalidInstanceData,
    ManualClock,
    ReplayResult,
    SqlStore,
    TransitionRecord,
    Verdict,
    replay,
    replay_instance,
    verify_chains,
    verify_stored,
)
from fsm.definition import flow_from_dict, flow_to_dict
from fsm.flows import FLOWS, GUARDS
from tests.fsm.conftest import T0

STEP = timedelta(minutes=1)
FLOW = FLOWS["ewallet_payment"]
PATH: list[tuple[str, Actor, dict[str, Any] | None]] = [
    ("send_registration", Actor.MERCHANT, None),
    ("accept_registration", Actor.PROVIDER_RESPONSE, {"tx_id": "TX1", "reference_no": "ORD-1"}),
    ("request_payment", Actor.MERCHANT, None),
    ("push_to_app", Actor.PROVIDER_RESPONSE, None),
    ("check_status", Actor.TIMER, None),
    ("confirm_payment", Actor.STATUS_INQUIRY, None),
]
"""An OVO payment to paid; step N (1-based) happens at T0 + N minutes."""


@pytest.fixture
def paid(store: SqlStore) -> tuple[Instance, list[TransitionRecord]]:
    """An OVO payment driven to paid through the engine, with a refusal and a duplicate."""
    clock = ManualClock(T0)
    engine = Engine(store, flows=FLOWS, clock=clock)
    pid = engine.start("ewallet_payment", wallet="ovo", amount=25000).id
    for index, (event, actor, payload) in enumerate(PATH):
        clock.advance(STEP)
        key = f"k{index}"
        engine.fire(pid, event, actor=actor, idempotency_key=key, payload=payload)
        engine.fire(pid, event, actor=actor, idempotency_key=key, payload=payload)  # duplicate
    return engine.get(pid), engine.history(pid)


def test_engine_history_replays_consistently(paid: tuple[Instance, list[TransitionRecord]]) -> None:
    instance, history = paid
    result = replay_instance(FLOW, instance, history)
    assert result.verdict == Verdict.CONSISTENT
    assert result.divergence is None
    assert (result.flow, result.state, result.applied) == ("ewallet_payment", "paid", len(PATH))
    assert (instance.state, instance.version) == (result.state, result.applied)


def test_empty_history_replays_to_initial_state() -> None:
    result = replay(FLOW, [])
    assert (result.state, result.applied, result.verdict) == (FLOW.initial, 0, Verdict.CONSISTENT)


def test_gap_in_sequence_diverges(paid: tuple[Instance, list[TransitionRecord]]) -> None:
    _, history = paid
    result = replay(FLOW, history[:2] + history[3:])
    assert result.divergence is not None
    assert (result.divergence.index, result.divergence.seq) == (2, 4)
    assert "gap" in result.divergence.reason
    assert (result.state, result.applied) == (history[1].dest, 2)  # the state before the gap


def test_repeated_step_diverges(paid: tuple[Instance, list[TransitionRecord]]) -> None:
    _, history = paid
    result = replay(FLOW, [*history[:3], history[2], *history[3:]])
    assert result.divergence is not None
    assert (result.divergence.index, result.divergence.seq) == (3, 3)
    assert result.applied == 3


def test_wrong_source_diverges(paid: tuple[Instance, list[TransitionRecord]]) -> None:
    _, history = paid
    tampered = [*history[:3], replace(history[3], source="registered"), *history[4:]]
    result = replay(FLOW, tampered)
    assert result.divergence is not None
    assert result.divergence.index == 3
    assert "'registered'" in result.divergence.reason
    assert "'payment_requested'" in result.divergence.reason  # where the log really was
    assert result.state == "payment_requested"


def test_transition_not_in_flow_diverges(paid: tuple[Instance, list[TransitionRecord]]) -> None:
    _, history = paid
    # confirm_payment exists, but it never leads to order_confirmed
    tampered = [*history[:-1], replace(history[-1], dest="order_confirmed")]
    result = replay(FLOW, tampered)
    assert result.divergence is not None
    assert result.divergence.index == len(PATH) - 1
    assert "'confirm_payment'" in result.divergence.reason
    assert "'order_confirmed'" in result.divergence.reason
    assert result.state == "status_check_requested"


def test_actor_not_allowed_diverges(paid: tuple[Instance, list[TransitionRecord]]) -> None:
    _, history = paid
    # a notification may never settle a payment, even if someone wrote that it did
    tampered = [*history[:-1], replace(history[-1], actor=Actor.PROVIDER_NOTIFICATION)]
    result = replay(FLOW, tampered)
    assert result.divergence is not None
    assert result.divergence.index == len(PATH) - 1
    assert "provider_notification" in result.divergence.reason
    assert "'confirm_payment'" in result.divergence.reason


def test_first_divergence_is_reported(paid: tuple[Instance, list[TransitionRecord]]) -> None:
    _, history = paid
    tampered = list(history)
    tampered[1] = replace(tampered[1], actor=Actor.BROWSER_CALLBACK)
    tampered[4] = replace(tampered[4], source="paid")
    result = replay(FLOW, tampered)
    assert result.divergence is not None
    assert result.divergence.index == 1
    assert result.applied == 1


def test_changed_definition_diverges_on_fingerprint(
    paid: tuple[Instance, list[TransitionRecord]],
) -> None:
    _, history = paid
    data = flow_to_dict(FLOW)
    request = next(t for t in data["transitions"] if t["event"] == "request_payment")
    request["actors"].append("operator")
    changed = flow_from_dict(data, guards=GUARDS)
    assert changed.fingerprint != FLOW.fingerprint

    result = replay(changed, history)
    assert result.divergence is not None
    assert (result.divergence.index, result.divergence.seq) == (0, 1)
    assert FLOW.fingerprint in result.divergence.reason
    assert changed.fingerprint in result.divergence.reason
    assert result.state == changed.initial


def test_record_with_foreign_fingerprint_diverges(
    paid: tuple[Instance, list[TransitionRecord]],
) -> None:
    _, history = paid
    tampered = [*history[:2], replace(history[2], fingerprint="sha256:0000000000000000")]
    result = replay(FLOW, tampered)
    assert result.divergence is not None
    assert result.divergence.index == 2
    assert "sha256:0000000000000000" in result.divergence.reason


def test_stored_state_disagreeing_with_log_diverges(
    paid: tuple[Instance, list[TransitionRecord]],
) -> None:
    instance, history = paid
    result = replay_instance(FLOW, replace(instance, state="failed"), history)
    assert result.divergence is not None
    assert (result.divergence.index, result.divergence.seq) == (None, None)
    assert "'failed'" in result.divergence.reason
    assert "'paid'" in result.divergence.reason
    assert (result.state, result.applied) == ("paid", len(PATH))  # what the log says


def test_stored_version_disagreeing_with_log_diverges(
    paid: tuple[Instance, list[TransitionRecord]],
) -> None:
    instance, history = paid
    result = replay_instance(FLOW, replace(instance, version=instance.version + 1), history)
    assert result.divergence is not None
    assert result.divergence.index is None


def test_log_missing_its_last_step_diverges_from_row(
    paid: tuple[Instance, list[TransitionRecord]],
) -> None:
    instance, history = paid
    result = replay_instance(FLOW, instance, history[:-1])
    assert result.verdict == Verdict.DIVERGED
    assert result.divergence is not None
    assert result.divergence.index is None


def test_until_seq_gives_state_as_of_each_step(
    paid: tuple[Instance, list[TransitionRecord]],
) -> None:
    _, history = paid
    for seq in range(len(history) + 1):
        result = replay(FLOW, history, until_seq=seq)
        expected = FLOW.initial if seq == 0 else history[seq - 1].dest
        assert (result.state, result.applied, result.divergence) == (expected, seq, None)


def test_until_seq_ignores_later_tampering(paid: tuple[Instance, list[TransitionRecord]]) -> None:
    instance, history = paid
    tampered = [*history[:-1], replace(history[-1], source="nowhere")]
    assert replay(FLOW, tampered, until_seq=len(PATH) - 1).verdict == Verdict.CONSISTENT
    # a cut-off replay is not compared with the row, which has moved on
    result = replay_instance(FLOW, instance, history, until_seq=2)
    assert (result.state, result.verdict) == (history[1].dest, Verdict.CONSISTENT)


def test_until_time_gives_state_as_of_that_moment(
    paid: tuple[Instance, list[TransitionRecord]],
) -> None:
    instance, history = paid
    assert [record.occurred_at for record in history] == [
        T0 + STEP * n for n in range(1, len(PATH) + 1)
    ]
    between = replay(FLOW, history, until_time=T0 + STEP * 2.5)
    assert (between.state, between.applied) == (history[1].dest, 2)
    exactly = replay(FLOW, history, until_time=T0 + STEP * 3)  # a step at that time counts
    assert (exactly.state, exactly.applied) == (history[2].dest, 3)
    before = replay(FLOW, history, until_time=T0)
    assert (before.state, before.applied) == (FLOW.initial, 0)
    cut = replay_instance(FLOW, instance, history, until_time=T0 + STEP * 4)
    assert (cut.state, cut.verdict) == (history[3].dest, Verdict.CONSISTENT)


def test_until_time_in_another_zone_is_the_same_instant(
    paid: tuple[Instance, list[TransitionRecord]],
) -> None:
    _, history = paid
    wib = timezone(timedelta(hours=7))
    moment = T0 + STEP * 4
    assert replay(FLOW, history, until_time=moment.astimezone(wib)) == replay(
        FLOW, history, until_time=moment
    )
    assert replay(FLOW, history, until_time=moment.astimezone(wib)).applied == 4


def test_naive_until_time_is_refused(paid: tuple[Instance, list[TransitionRecord]]) -> None:
    _, history = paid
    with pytest.raises(InvalidInstanceData, match="naive"):
        replay(FLOW, history, until_time=datetime(2026, 11, 23, 10, 0))


def unchained(result: ReplayResult) -> ReplayResult:
    """``result`` without its chain verdict: what :func:`replay` of the history gives."""
    return replace(result, chain=None)


def test_verify_stored_agrees_with_replay_of_each_history(
    store: SqlStore, paid: tuple[Instance, list[TransitionRecord]]
) -> None:
    instance, history = paid
    results = verify_stored(store, FLOW, [instance.id, "no-such-payment", instance.id])
    assert list(results) == [instance.id, "no-such-payment"]
    assert unchained(results[instance.id]) == replay(FLOW, history)
    assert results[instance.id].chain == verify_chains(store, [instance.id])[instance.id]
    assert results["no-such-payment"] == replay(FLOW, [])  # nothing stored, no chain to check
    steps = store.replay_rows([instance.id])[instance.id]
    assert [step.seq for step in steps] == [record.seq for record in history]
    assert all(step.occurred_at is None for step in steps)


def test_verify_stored_cuts_by_seq_and_by_time_like_replay(
    store: SqlStore, paid: tuple[Instance, list[TransitionRecord]]
) -> None:
    instance, history = paid
    for until_seq in range(len(history) + 1):
        got = verify_stored(store, FLOW, [instance.id], until_seq=until_seq)[instance.id]
        assert unchained(got) == replay(FLOW, history, until_seq=until_seq)
    for moment in (T0, T0 + STEP * 2.5, T0 + STEP * 3, T0 + STEP * 99):
        got = verify_stored(store, FLOW, [instance.id], until_time=moment)[instance.id]
        assert unchained(got) == replay(FLOW, history, until_time=moment)
    timed = store.replay_rows([instance.id], with_time=True)[instance.id]
    assert [step.occurred_at for step in timed] == [record.occurred_at for record in history]


def test_verify_stored_reports_the_first_divergence_like_replay(
    store: SqlStore, paid: tuple[Instance, list[TransitionRecord]]
) -> None:
    instance, history = paid
    data = flow_to_dict(FLOW)
    request = next(t for t in data["transitions"] if t["event"] == "request_payment")
    request["actors"].append("operator")
    changed = flow_from_dict(data, guards=GUARDS)
    got = verify_stored(store, changed, [instance.id])[instance.id]
    assert unchained(got) == replay(changed, history)
    assert got.verdict is Verdict.DIVERGED  # a valid history under another definition
    assert got.chain is not None
    assert got.chain.status is ChainStatus.INTACT


def test_verify_stored_folds_many_instances_in_one_pass_like_replay(
    store: SqlStore, engine: Engine
) -> None:
    """Instances of every length, one edited by hand, among ids with no log, across query
    chunks."""
    real = []
    for number, steps in enumerate((0, 1, 3, 6, 2, 6)):
        pid = engine.start("ewallet_payment", wallet="ovo", amount=25000).id
        for index, (event, actor, payload) in enumerate(PATH[:steps]):
            if payload and "reference_no" in payload:  # one live payment per reference
                payload = {**payload, "reference_no": f"ORD-{number}"}
            engine.fire(pid, event, actor=actor, idempotency_key=f"k{index}", payload=payload)
        real.append(pid)
    with store.engine.begin() as conn:  # a step by an actor the flow does not allow
        conn.execute(
            text(
                "update transition_log set actor = 'customer' where instance_id = :id and seq = 2"
            ),
            {"id": real[2]},
        )
    ids = [f"no-log-{number}" for number in range(600)]
    for position, pid in zip((0, 1, 300, 511, 512, 599), real, strict=True):
        ids.insert(position, pid)

    for cut in ({}, {"until_seq": 2}, {"until_time": T0 + STEP}, {"until_time": T0 - STEP}):
        results = verify_stored(store, FLOW, ids, **cut)
        assert list(results) == ids
        expected = {pid: replay(FLOW, store.history(pid), **cut) for pid in ids}
        assert {pid: unchained(result) for pid, result in results.items()} == expected
    edited = verify_stored(store, FLOW, ids)[real[2]]
    assert edited.divergence is not None
    assert edited.divergence.seq == 2
    assert edited.verdict is Verdict.TAMPERED  # the edit breaks the chain at the same step
    assert edited.chain is not None
    assert edited.chain.seq == 2
