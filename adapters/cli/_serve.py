"""``ewallet-fsm serve``: the notification and callback endpoints as a standalone service."""

from __future__ import annotations

import argparse
import os
from typing import Any

import httpx
import uvicorn
from pydantic import SecretStr

from adapters.asgi import CALLBACK_PATH, NOTIFICATION_PATH, NotificationApp
from adapters.cli._arguments import port_number
from adapters.cli._errors import check_can_listen
from adapters.cli._output import default_db, write
from adapters.client import NicepayClient
from adapters.config import Environment, NicepayCredentials
from adapters.notifications import NotificationHandler
from adapters.service import PaymentService
from fsm.engine import Engine
from fsm.errors import ConfigurationError
from fsm.persistence import SqlStore

KEY_ENV = "EWALLET_FSM_MERCHANT_KEY"
IMID_ENV = "EWALLET_FSM_IMID"
NICEPAY_URL_ENV = "EWALLET_FSM_NICEPAY_URL"


def register(subparsers: Any) -> None:
    """Add the serve command."""
    serve = subparsers.add_parser(
        "serve",
        help=f"serve {NOTIFICATION_PATH} and {CALLBACK_PATH} (merchant key from ${KEY_ENV})",
    )
    serve.add_argument("--db", default=default_db(), help="database URL (default: %(default)s)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=port_number, default=8080, help="port to listen on")
    serve.add_argument(
        "--nicepay-url",
        default=os.environ.get(NICEPAY_URL_ENV, Environment.SANDBOX.value),
        help=f"NICEPAY base URL ending in /nicepay (default: ${NICEPAY_URL_ENV} or the sandbox)",
    )
    serve.add_argument(
        "--allow-from",
        action="append",
        metavar="NETWORK",
        help="accept notifications only from this network (repeatable; default: any)",
    )
    serve.set_defaults(handler=_serve)


def credentials_from_env(nicepay_url: str) -> NicepayCredentials:
    """The merchant's credentials from the environment; the key is never a command-line flag.

    Raises:
        ConfigurationError: the iMid or the merchant key is not set.
    """
    imid, key = os.environ.get(IMID_ENV, ""), os.environ.get(KEY_ENV, "")
    if not imid or not key:
        raise ConfigurationError(
            f"set ${IMID_ENV} and ${KEY_ENV}: notifications cannot be verified"
        )
    return NicepayCredentials(imid=imid, merchant_key=SecretStr(key), base_url=nicepay_url)


def _serve(args: argparse.Namespace) -> int:
    credentials = credentials_from_env(args.nicepay_url)
    check_can_listen(args.host, args.port)
    store = SqlStore(args.db)
    store.create_schema()
    public = f"http://{args.host}:{args.port}"
    with httpx.Client(timeout=httpx.Timeout(15.0, connect=5.0)) as http:
        engine = Engine(store)
        service = PaymentService(
            engine,
            NicepayClient(http, credentials, clock=engine.clock),
            notification_url=public + NOTIFICATION_PATH,
            callback_url=public + CALLBACK_PATH,
        )
        app = NotificationApp(NotificationHandler(service, allowed_sources=args.allow_from))
        write(f"serving {public}{NOTIFICATION_PATH} and {public}{CALLBACK_PATH}")
        uvicorn.run(app, host=args.host, port=args.port, log_config=None, lifespan="off")
    return 0
