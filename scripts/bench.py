"""The performance benchmark: the engine held against the hand-written floor, side by side.

    .venv/bin/python scripts/bench.py                   # the full run
    .venv/bin/python scripts/bench.py --quick --json    # smaller sizes; bench-results.json
    .venv/bin/python scripts/bench.py --plot ratios.png # also draw the ratios (needs matplotlib)

The comparisons live in scripts/perf/; scripts/README.md says what each measures.
"""

from __future__ import annotations

import sys

from perf.cli import main

if __name__ == "__main__":
    sys.exit(main())
