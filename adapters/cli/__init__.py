"""The ``ewallet-fsm`` command. It lives beside the adapters because it may import both packages."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from adapters.cli import _demo, _diagrams, _flows, _reconcile, _records, _serve, _simulator
from fsm.errors import FsmError

_COMMANDS = (_flows, _records, _demo, _diagrams, _serve, _reconcile, _simulator)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="ewallet-fsm",
        description="E-wallet payment lifecycles as explicit, persisted state machines.",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log every event and call to stderr"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _COMMANDS:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code (2 for a refused request)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = args.handler(args)
    except FsmError as exc:
        sys.stderr.write(f"ewallet-fsm: error: {exc}\n")
        return 2
    return code
