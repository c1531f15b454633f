"""The table, the JSON and the plot of one run."""

from __future__ import annotations

import json
import platform
import sqlite3
import statistics
from pathlib import Path
from typing import Any

from perf.harness import Result


def duration(seconds: float) -> str:
    """Seconds in the unit that reads best."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def table(results: list[Result], skipped: dict[str, str]) -> str:
    """Every comparison: median per operation, ratio to the floor by round, the targets."""
    lines = []
    for result in results:
        comparison = result.comparison
        lines += ["", f"{comparison.title}  [floor: {comparison.floor}]"]
        for variant in comparison.variants:
            ratios = result.ratios(variant.name)
            rate = ""
            if comparison.name == "burst":
                rate = f"  {1 / result.median(variant.name):,.0f}/s"
            lines.append(
                f"  {variant.name:<38} {duration(result.median(variant.name)):>10}"
                f"  x{result.ratio(variant.name):>7.2f}"
                f"  [{min(ratios):.2f}-{max(ratios):.2f}]{rate}"
            )
        for verdict in result.verdicts():
            mark = "holds" if verdict["holds"] else "MISSED"
            lines.append(
                f"  target: {verdict['variant']} / {verdict['against']} = "
                f"{verdict['ratio']:.2f} (at most {verdict['max_ratio']}) {mark}"
            )
        lines += [f"  note: {note}" for note in comparison.notes]
        lines += _extras(result)
    lines += [f"\n{name}: skipped ({why})" for name, why in skipped.items()]
    return "\n".join(lines)


def _extras(result: Result) -> list[str]:
    extra = result.comparison.extra
    lines = []
    if "rss_kib_after_batches" in extra:
        samples = extra["rss_kib_after_batches"]
        rss = ", ".join(f"{name} {max(kib) / 1024:.0f} MiB" for name, kib in samples.items())
        lines.append(
            f"  RSS after batches (max): {rss}; at start {extra['rss_kib_at_start'] / 1024:.0f} MiB"
        )
        scans = extra.get("full_scans") or ["none"]
        lines.append(f"  full-table scans among the lookups: {', '.join(scans)}")
    if "reference" in extra:
        mine, against = extra["reference"]
        lines.append(f"  reference: {mine} / {against} = {result.ratio(mine, against):.2f}")
    if "throughput" in extra:
        lines.append("  " + _throughput_line(result))
    if "transitions_per_burst" in extra:
        per = [count / result.comparison.ops for count in extra["transitions_per_burst"]]
        lines.append(
            f"  durable transitions per notification: {', '.join(f'{p:.1f}' for p in per)}"
        )
    return lines


def throughput(result: Result) -> dict[str, Any]:
    """Events per second of a single-event variant and of a batched one, and the gain."""
    pair = result.comparison.extra["throughput"]
    single, batched = pair["single"], pair["batched"]
    return {
        **pair,
        "single_per_s": round(1 / result.median(single)),
        "batched_per_s": round(1 / result.median(batched)),
        "gain": round(result.ratio(single, batched), 2),
    }


def _throughput_line(result: Result) -> str:
    rates = throughput(result)
    return (
        f"throughput: {rates['single']} {rates['single_per_s']:,}/s, {rates['batched']} "
        f"{rates['batched_per_s']:,}/s: x{rates['gain']:.2f}"
    )


def document(
    results: list[Result], skipped: dict[str, str], meta: dict[str, Any]
) -> dict[str, Any]:
    """The JSON written by ``--json``."""
    return {
        "meta": {
            **meta,
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "machine": platform.machine(),
        },
        "comparisons": [_with_throughput(result) for result in results],
        "targets": [
            {"comparison": result.comparison.name, **verdict}
            for result in results
            for verdict in result.verdicts()
        ],
        "skipped": skipped,
    }


def _with_throughput(result: Result) -> dict[str, Any]:
    data = result.to_json()
    if "throughput" in result.comparison.extra:
        data["throughput"] = throughput(result)
    return data


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON."""
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def plot(results: list[Result], path: Path) -> None:
    """Bars of the median ratios (log scale), each round as a dot, each target as a red mark."""
    import matplotlib  # only --plot needs it, and only the dev extra installs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows: list[tuple[str, list[float], float | None]] = []
    for result in results:
        comparison = result.comparison
        limits = {(t.variant, t.against): t.max_ratio for t in comparison.targets}
        pairs = [(v.name, comparison.floor) for v in comparison.variants]
        pairs = [pair for pair in pairs if pair[0] != pair[1]]
        pairs += [pair for pair in limits if pair not in pairs]
        for variant, against in pairs:
            label = f"{comparison.name}: {variant} / {against}"
            rows.append((label, result.ratios(variant, against), limits.get((variant, against))))
    figure, axes = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.5))
    positions = range(len(rows))
    medians = [statistics.median(ratios) for _, ratios, _ in rows]
    axes.barh(list(positions), medians, color="#8fb3d9")
    for position, (_, ratios, limit) in zip(positions, rows, strict=True):
        axes.plot(ratios, [position] * len(ratios), "k.", markersize=4)
        if limit is not None:
            axes.plot([limit, limit], [position - 0.4, position + 0.4], "r-", linewidth=2)
    axes.set_yticks(list(positions), [label for label, _, _ in rows], fontsize=8)
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.axvline(1.0, color="grey", linewidth=0.8)
    axes.set_xlabel("ratio (median bar, rounds as dots, target in red)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
