"""``ewallet-fsm simulator``: the loopback NICEPAY simulator, served until interrupted.

The simulator comes with the ``simulator`` extra, imported only when the command runs.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any

from pydantic import SecretStr, ValidationError

from adapters.cli._arguments import port_number
from adapters.cli._errors import check_can_listen
from adapters.cli._extras import require_extra
from adapters.cli._output import write

DEFAULT_KEY_ENV = "NICEPAY_MERCHANT_KEY"


def register(subparsers: Any) -> None:
    """Add the simulator command."""
    parser = subparsers.add_parser(
        "simulator", help="serve the NICEPAY simulator on 127.0.0.1 until interrupted"
    )
    parser.add_argument(
        "--port", type=port_number, default=0, help="TCP port (default: any free one)"
    )
    parser.add_argument("--imid", default="IONPAYTEST", help="the merchant ID it accepts")
    parser.add_argument(
        "--merchant-key-env",
        default=DEFAULT_KEY_ENV,
        metavar="VAR",
        help=f"environment variable holding the merchant key (default: {DEFAULT_KEY_ENV})",
    )
    parser.add_argument(
        "--expiry-scale", type=float, default=1.0, help="multiply the wallets' expiry windows"
    )
    parser.add_argument("--notification-format", choices=("form", "json"), default="form")
    parser.add_argument(
        "--no-duplicate-check", action="store_true", help="accept a referenceNo twice"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    require_extra("simulator", "simulator", "adapters.simulator", "uvicorn")
    from adapters.simulator import NicepaySimulator, SimulatorConfig  # checked above

    key = os.environ.get(args.merchant_key_env, "")
    if not key:
        sys.stderr.write(f"ewallet-fsm: error: set ${args.merchant_key_env} to the merchant key\n")
        return 2
    try:
        config = SimulatorConfig(
            imid=args.imid,
            merchant_key=SecretStr(key),
            expiry_scale=args.expiry_scale,
            notification_format=args.notification_format,
            duplicate_reference_check=not args.no_duplicate_check,
        )
    except ValidationError as exc:
        fields = ", ".join(str(error["loc"][0]) for error in exc.errors())
        sys.stderr.write(f"ewallet-fsm: error: invalid simulator settings: {fields}\n")
        return 2
    check_can_listen("127.0.0.1", args.port)
    stop = _stop_on_signals()
    with NicepaySimulator(config).serve(port=args.port) as sim:
        write(f"NICEPAY simulator: {sim.nicepay_url} (iMid {config.imid})")
        write(f"wallet pages: {sim.base_url}/partner/, test control: {sim.base_url}/_sim/")
        write("press Ctrl-C to stop")
        sys.stdout.flush()
        stop.wait()
    write("simulator stopped")
    return 0


def _stop_on_signals() -> threading.Event:
    """An event set by Ctrl-C or SIGTERM, installed before serving.

    A KeyboardInterrupt raised wherever the main thread happens to be (while it starts the server
    or prints the URL) could skip the simulator's shutdown; an event set by the handler can't.
    """
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    return stop
