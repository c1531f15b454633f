"""``python scripts/bench.py``: run the comparisons, print the table, write JSON and the plot."""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from perf import burst, decide, durable, replay, scale, settle
from perf.fixtures import plain_pg_url
from perf.harness import Comparison, Result, run_rounds
from perf.profile import profile
from perf.report import document, plot, table, write_json
from perf.settings import Settings, settings

Builder = Callable[[Settings, ExitStack], Comparison]

BUILDERS: dict[str, Builder] = {
    "decide": decide.comparison,
    "fire-sqlite-normal": lambda config, stack: durable.sqlite_comparison(config, stack, "NORMAL"),
    "fire-sqlite-full": lambda config, stack: durable.sqlite_comparison(config, stack, "FULL"),
    "fire-many-sqlite-full": durable.batch_comparison,
    "fire-postgres": durable.postgres_comparison,
    "replay": replay.comparison,
    "scale": scale.comparison,
    "burst": burst.comparison,
    "settle": settle.comparison,
}
WARMUP = {
    "decide": 500,
    "fire-sqlite-normal": 50,
    "fire-sqlite-full": 10,
    "fire-many-sqlite-full": 50,
    "fire-postgres": 50,
}


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="bench.py", description="Hold the engine against the raw floor, side by side."
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer rounds")
    parser.add_argument(
        "--json",
        nargs="?",
        const=Path("bench-results.json"),
        type=Path,
        metavar="PATH",
        help="write the results as JSON (default path: bench-results.json)",
    )
    parser.add_argument("--plot", type=Path, metavar="PNG", help="draw the ratios (matplotlib)")
    parser.add_argument(
        "--only",
        metavar="NAMES",
        help=f"comma-separated subset of: {', '.join(BUILDERS)}",
    )
    parser.add_argument("--rounds", type=int, help="override the number of rounds")
    parser.add_argument(
        "--profile",
        metavar="NAME",
        help="instead of measuring, profile the engine side of one comparison (pyinstrument)",
    )
    parser.add_argument("--flat", action="store_true", help="with --profile: a flat listing")
    parser.add_argument("--pg-url", help="PostgreSQL URL (default $EWALLET_FSM_PG_URL or test)")
    parser.add_argument("--workdir", type=Path, help="where the database files go (default: tmp)")
    return parser.parse_args(argv)


def postgres_problem(url: str) -> str | None:
    """Why PostgreSQL cannot be used, or ``None`` when it can."""
    try:
        with psycopg.connect(plain_pg_url(url), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        return f"PostgreSQL unreachable at {url}: {type(error).__name__}"
    return None


def run(config: Settings, names: Sequence[str]) -> tuple[list[Result], dict[str, str]]:
    """Build and run each named comparison in turn, releasing its databases after it."""
    results, skipped = [], {}
    for name in names:
        if name == "fire-postgres":
            problem = postgres_problem(config.pg_url)
            if problem:
                skipped[name] = problem
                continue
        started = time.perf_counter()
        with ExitStack() as stack:
            comparison = BUILDERS[name](config, stack)
            results.append(run_rounds(comparison, warmup=WARMUP.get(name, 0)))
        print(f"  {name}: {time.perf_counter() - started:.1f} s", flush=True)
    return results, skipped


def profile_one(args: argparse.Namespace) -> int:
    """Build one comparison and print the profile of its engine side."""
    if args.profile not in BUILDERS:
        print(f"unknown comparison: {args.profile}")
        return 2
    with (
        tempfile.TemporaryDirectory(prefix="ewallet-bench-", dir=args.workdir) as workdir,
        ExitStack() as stack,
    ):
        config = settings(quick=args.quick, workdir=Path(workdir), pg_url=args.pg_url, rounds=1)
        print(profile(BUILDERS[args.profile](config, stack), flat=args.flat))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print, write; exit 2 on bad arguments (a missed target is reported, not an error)."""
    args = parse(argv)
    names = list(BUILDERS) if args.only is None else args.only.split(",")
    unknown = [name for name in names if name not in BUILDERS]
    if unknown:
        print(f"unknown comparison(s): {', '.join(unknown)}")
        return 2
    logging.getLogger("fsm").setLevel(logging.ERROR)  # refusals are not part of the measure
    if args.profile is not None:
        return profile_one(args)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ewallet-bench-", dir=args.workdir) as workdir:
        config = settings(
            quick=args.quick, workdir=Path(workdir), pg_url=args.pg_url, rounds=args.rounds
        )
        print(f"{'quick' if config.quick else 'full'} run, {config.rounds} rounds", flush=True)
        results, skipped = run(config, names)
    print(table(results, skipped))
    elapsed = time.perf_counter() - started
    print(f"\n{elapsed:.0f} s in all")
    meta = {
        "quick": config.quick,
        "rounds": config.rounds,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(elapsed, 1),
        "scale_sizes": list(config.scale_sizes),
    }
    data = document(results, skipped, meta)
    if args.json is not None:
        write_json(args.json, data)
        print(f"wrote {args.json}")
    if args.plot is not None:
        plot(results, args.plot)
        print(f"wrote {args.plot}")
    return 0
