"""Rounds, medians and ratios: the measuring part, blind to what is measured."""

from __future__ import annotations

import gc
import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Batch = Callable[[int], float]
"""Runs that many operations and returns the seconds they took (setup excluded)."""


@dataclass(frozen=True)
class Variant:
    """One contender of a comparison."""

    name: str
    run: Batch
    note: str = ""


@dataclass(frozen=True)
class Target:
    """The issue's goal: ``variant`` takes at most ``max_ratio`` times ``against``."""

    variant: str
    against: str
    max_ratio: float
    goal: str


@dataclass
class Comparison:
    """Variants measured side by side; ratios are taken against ``floor``."""

    name: str
    title: str
    floor: str
    variants: Sequence[Variant]
    ops: int
    """Operations per variant per round."""
    rounds: int
    targets: Sequence[Target] = ()
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    after_batch: Callable[[str], None] | None = None
    """Called with the variant's name after each of its batches (e.g. to sample memory)."""


@dataclass
class Result:
    """Seconds per operation, round by round, for every variant of one comparison."""

    comparison: Comparison
    per_op: dict[str, list[float]]

    def median(self, variant: str) -> float:
        """Median seconds per operation over the rounds."""
        return statistics.median(self.per_op[variant])

    def ratios(self, variant: str, against: str | None = None) -> list[float]:
        """``variant`` over ``against`` (default: the floor), one ratio per round."""
        base = self.per_op[against or self.comparison.floor]
        return [mine / theirs for mine, theirs in zip(self.per_op[variant], base, strict=True)]

    def ratio(self, variant: str, against: str | None = None) -> float:
        """The median of the round-by-round ratios."""
        return statistics.median(self.ratios(variant, against))

    def verdicts(self) -> list[dict[str, Any]]:
        """Each target with the measured ratio and whether it holds."""
        return [
            {
                "variant": target.variant,
                "against": target.against,
                "max_ratio": target.max_ratio,
                "ratio": round(self.ratio(target.variant, target.against), 3),
                "holds": self.ratio(target.variant, target.against) <= target.max_ratio,
                "goal": target.goal,
            }
            for target in self.comparison.targets
        ]

    def to_json(self) -> dict[str, Any]:
        """Everything measured, in seconds per operation and plain ratios."""
        comparison = self.comparison
        return {
            "name": comparison.name,
            "title": comparison.title,
            "floor": comparison.floor,
            "ops_per_round": comparison.ops,
            "rounds": comparison.rounds,
            "variants": {
                variant.name: {
                    "note": variant.note,
                    "median_s": self.median(variant.name),
                    "rounds_s": self.per_op[variant.name],
                    "ratio_to_floor": round(self.ratio(variant.name), 3),
                    "ratios_by_round": [round(r, 3) for r in self.ratios(variant.name)],
                }
                for variant in comparison.variants
            },
            "targets": self.verdicts(),
            "notes": comparison.notes,
            "extra": comparison.extra,
        }


def run_rounds(comparison: Comparison, *, warmup: int = 0) -> Result:
    """Run every variant ``rounds`` times, alternating the order from one round to the next.

    Before each batch the page cache is written out, untimed: otherwise the kernel's writeback
    of the batch before (another variant's database file) lands in the next one's fsyncs, and
    with three variants the one in the middle always pays for a neighbour.
    """
    variants = list(comparison.variants)
    if warmup:
        for variant in variants:
            variant.run(warmup)
    per_op: dict[str, list[float]] = {variant.name: [] for variant in variants}
    for number in range(comparison.rounds):
        for variant in variants if number % 2 == 0 else reversed(variants):
            gc.collect()
            os.sync()
            per_op[variant.name].append(variant.run(comparison.ops) / comparison.ops)
            if comparison.after_batch is not None:
                comparison.after_batch(variant.name)
    return Result(comparison, per_op)


def rss_kib() -> int:
    """The process's resident set size now, in KiB (Linux ``/proc``)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
