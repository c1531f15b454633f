"""Regenerate diagrams/: the DOT and SVG of every payment flow and of the simulator's flow.

Run after changing a flow:      .venv/bin/python scripts/render_diagrams.py
Check the committed files only: .venv/bin/python scripts/render_diagrams.py --check
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from adapters.simulator.flow import NICEPAY_TRANSACTION
from fsm.flows import FLOWS
from fsm.render.diagram import flow_to_dot, render

DIAGRAMS = Path(__file__).resolve().parent.parent / "diagrams"
DRAWN = {**FLOWS, NICEPAY_TRANSACTION.name: NICEPAY_TRANSACTION}
"""The payment flows, and NICEPAY's own view of a transaction that the simulator runs on."""


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or with ``--check`` verify) ``<flow>.dot`` and ``<flow>.svg`` for every flow."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale or missing files")
    parser.add_argument("--out", type=Path, default=DIAGRAMS, help="directory (default: diagrams/)")
    args = parser.parse_args(argv)
    stale = []
    for name in sorted(DRAWN):
        dot = flow_to_dot(DRAWN[name])
        dot_path, svg_path = args.out / f"{name}.dot", args.out / f"{name}.svg"
        if args.check:
            current = dot_path.is_file() and dot_path.read_text(encoding="utf-8") == dot
            stale += [] if current and svg_path.is_file() else [name]
            continue
        args.out.mkdir(parents=True, exist_ok=True)
        dot_path.write_text(dot, encoding="utf-8")
        svg_path.write_bytes(render(dot, "svg"))
        print(f"wrote {dot_path} and {svg_path.name}")
    if stale:
        print(
            f"stale diagrams: {', '.join(stale)}; run scripts/render_diagrams.py", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
