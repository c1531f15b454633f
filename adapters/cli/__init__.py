"""The ``ewallet-fsm`` command. It lives beside the adapters because it may import both packages."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib import metadata

from adapters.cli import (
    _checkpoint,
    _demo,
    _diagrams,
    _events,
    _flows,
    _listing,
    _migrate,
    _reconcile,
    _records,
    _reseal,
    _resolve,
    _serve,
    _settle,
    _simulator,
    _unconfirmed,
    _verify,
)
from adapters.cli._arguments import OneLineParser
from adapters.cli._catalog import choose
from adapters.cli._errors import report
from adapters.cli._logs import TEXT, log_handler
from fsm.errors import ConfigurationError

DISTRIBUTION = "ewallet-fsm"

_COMMANDS = (
    _flows,
    _records,
    _verify,
    _checkpoint,
    _reseal,
    _listing,
    _resolve,
    _settle,
    _migrate,
    _demo,
    _diagrams,
    _serve,
    _reconcile,
    _unconfirmed,
    _events,
    _simulator,
)


LOGGED_PACKAGES = ("fsm", "adapters")
"""Whose records a command that logs by default (``serve``) writes at its level; other
libraries' stay at ERROR unless ``-v``."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = OneLineParser(
        prog="ewallet-fsm",
        description="E-wallet payment lifecycles as explicit, persisted state machines.",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log every event and call to stderr"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {installed_version()}")
    parser.add_argument(
        "--flows",
        metavar="MODULE:NAME",
        help="the flows to use: a service's FlowCatalog (default: the built-in flows)",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _COMMANDS:
        module.register(subparsers)
    return parser


def installed_version() -> str:
    """The version of the installed ``ewallet-fsm`` distribution (``unknown`` if not installed)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code (2 for a refused request).

    A failure the user can fix (a refused request, a bad argument, a missing driver, an
    unreachable database, a taken port) is one line on standard error, never a traceback.
    """
    arguments = sys.argv[1:] if argv is None else list(argv)
    try:
        choose(arguments)
    except ConfigurationError as exc:
        sys.stderr.write(f"ewallet-fsm: {exc}\n")
        return 2
    parser = build_parser()
    if not arguments:
        parser.print_usage(sys.stderr)
        return 2
    args = parser.parse_args(arguments)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR,
        handlers=[log_handler(getattr(args, "log_format", TEXT))],
    )
    if not args.verbose and hasattr(args, "log_level"):  # the library's own records only
        for package in LOGGED_PACKAGES:
            logging.getLogger(package).setLevel(args.log_level)
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:  # a looping command stopped by hand: nothing went wrong
        return 130
    except Exception as exc:
        if not report(exc, getattr(args, "db", None)):
            raise
        if args.verbose:  # the traceback behind the one line, asked for
            logging.getLogger(__name__).info("the command stopped", exc_info=True)
        return 2
    return code
