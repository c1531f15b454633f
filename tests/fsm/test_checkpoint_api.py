"""Checkpoints through the library: taken from any store, loaded back, held against a store."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fsm import ChainStatus, CheckpointRefused, Engine, ManualClock, MemoryStore
from fsm.chain import Chain
from fsm.chain.checkpoint import load, take, verify_against
from fsm.flows import FLOWS
from tests.fsm.conftest import T0
from tests.fsm.test_chain import KEYS, paid_path


def test_an_older_store_is_rolled_back_against_a_newer_ones_checkpoint() -> None:
    older, newer = MemoryStore(audit_keys=KEYS), MemoryStore(audit_keys=KEYS)
    for store in (older, newer):
        paid_path(store, "pay-1")
    Engine(newer, flows=FLOWS, clock=ManualClock(T0)).fire(
        "pay-1", "report_pending", actor="status_inquiry", idempotency_key="k9"
    )
    text = take(newer, newer.instance_ids(), T0).to_json()
    checkpoint = load(text, Chain(KEYS), require_key=True)
    assert checkpoint.head("pay-1") is not None
    assert verify_against(newer, checkpoint, ["pay-1"])["pay-1"].status is ChainStatus.INTACT
    verdict = verify_against(older, checkpoint, ["pay-1"])["pay-1"]
    assert (verdict.status, verdict.seq) == (ChainStatus.TAMPERED, None)
    assert "rolled back" in (verdict.reason or "")


def test_a_checkpoint_is_refused_under_other_keys_or_with_a_naive_time() -> None:
    store = MemoryStore(audit_keys=KEYS)
    paid_path(store, "pay-1")
    text = take(store, ["pay-1"], T0 + timedelta(hours=1)).to_json()
    with pytest.raises(CheckpointRefused, match="which was not given"):
        load(text, Chain())
    with pytest.raises(CheckpointRefused, match="is not a ewallet-fsm-checkpoint/1 file"):
        load(text.replace("+00:00", ""), Chain(KEYS))
    unkeyed = MemoryStore()
    paid_path(unkeyed, "pay-1")
    plain = take(unkeyed, ["pay-1"], T0).to_json()
    assert not load(plain, Chain(KEYS)).keyed
    with pytest.raises(CheckpointRefused, match="a key is required"):
        load(plain, Chain(KEYS), require_key=True)
