"""``--profile NAME``: the engine side of one comparison under pyinstrument, as text."""

from __future__ import annotations

from perf.harness import Comparison


def profile(comparison: Comparison, *, flat: bool = False) -> str:
    """Profile one batch of the variant the comparison's first target is about."""
    from pyinstrument import Profiler  # only --profile needs it (the dev extra installs it)

    wanted = comparison.targets[0].variant if comparison.targets else comparison.variants[-1].name
    variant = next(v for v in comparison.variants if v.name == wanted)
    variant.run(max(1, comparison.ops // 10))  # warm up caches and pools first
    profiler = Profiler(interval=0.0005)
    profiler.start()
    variant.run(comparison.ops)
    profiler.stop()
    header = f"{comparison.title}: {variant.name}, {comparison.ops} operations\n"
    return header + profiler.output_text(unicode=True, flat=flat, show_all=False)
