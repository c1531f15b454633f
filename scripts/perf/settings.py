"""How big and how long: the full run and ``--quick``."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class Settings:
    """Sizes of every comparison."""

    quick: bool
    rounds: int
    decide_ops: int
    fire_ops: int
    """Events per round for durable fire at NORMAL and on PostgreSQL."""
    fire_full_ops: int
    """Events per round at synchronous=FULL (each commit waits for an fsync)."""
    payments: int
    """Payments seeded for durable fire; events go round-robin over them."""
    replay_transitions: int
    scale_sizes: tuple[int, ...]
    scale_ops: int
    burst_payments: int
    """Notifications per burst (one per payment)."""
    burst_rounds: int
    burst_clients: int
    settle_payments: int
    """Payments notified and settled per round (``settle``; it runs ``burst_rounds``)."""
    pg_url: str
    workdir: Path


def settings(*, quick: bool, workdir: Path, pg_url: str | None, rounds: int | None) -> Settings:
    """The full run's sizes, or the quick run's smaller ones."""
    chosen = Settings(
        quick=False,
        rounds=7,
        decide_ops=20_000,
        fire_ops=2_000,
        fire_full_ops=500,
        payments=500,
        replay_transitions=100_000,
        scale_sizes=(1_000, 100_000, 1_000_000),
        scale_ops=400,
        burst_payments=200,
        burst_rounds=3,
        burst_clients=8,
        settle_payments=100,
        pg_url=pg_url or os.environ.get("EWALLET_FSM_PG_URL", DEFAULT_PG_URL),
        workdir=workdir,
    )
    if quick:
        chosen = replace(
            chosen,
            quick=True,
            rounds=5,
            decide_ops=5_000,
            fire_ops=800,
            fire_full_ops=200,
            payments=200,
            scale_sizes=(1_000, 20_000, 100_000),
            scale_ops=400,
            burst_payments=60,
            settle_payments=30,
            burst_rounds=2,
        )
    if rounds is not None:
        chosen = replace(chosen, rounds=rounds, burst_rounds=min(rounds, chosen.burst_rounds))
    return chosen
