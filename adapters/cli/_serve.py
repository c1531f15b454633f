"""``ewallet-fsm serve``: the notification and callback endpoints as a standalone service.

``serve`` makes sure at start that it can write to the database, serves without an access log
(a request line's query string could carry a token; every request is journalled in
``inbound_attempt`` instead), and believes ``X-Forwarded-For`` only from ``--trusted-proxy``
networks. It runs the status checks its requests ask for in a worker thread of its own, unless
``--no-status-worker`` leaves them to ``reconcile`` or ``relay --status-checks`` elsewhere.
``prune-inbound`` deletes journalled requests past their retention.
"""

from __future__ import annotations

import argparse
import logging
import os
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import SecretStr

from adapters.cli._arguments import port_number
from adapters.cli._catalog import catalog
from adapters.cli._errors import check_can_listen
from adapters.cli._extras import require_extra
from adapters.cli._logs import add_log_format, hide_in_logs
from adapters.cli._output import default_db, open_store, write
from adapters.inbound.asgi import CALLBACK_PATH, NOTIFICATION_PATH, NotificationApp
from adapters.inbound.handler import NotificationHandler
from adapters.inbound.journal import DEFAULT_RETENTION, InboundJournal
from adapters.nicepay.client import NicepayClient
from adapters.nicepay.config import Environment, NicepayCredentials
from adapters.reconcile.retention import prune_finished
from adapters.reconcile.worker import StatusWorker
from adapters.service import PaymentService
from fsm.chain.keys import ENV_VAR as AUDIT_KEY_ENV
from fsm.chain.keys import AuditKeys, written_keys
from fsm.engine import Engine
from fsm.errors import ConfigurationError
from fsm.flows import EVENT_TYPES
from fsm.store.sql import SqlStore
from fsm.telemetry import watch_oldest_unsettled

KEY_ENV = "EWALLET_FSM_MERCHANT_KEY"
IMID_ENV = "EWALLET_FSM_IMID"
NICEPAY_URL_ENV = "EWALLET_FSM_NICEPAY_URL"
SERVE_BUSY_TIMEOUT = 2.0
"""A locked SQLite file is answered 503 after the engine's 8 attempts of this long each, well
within a sender's patience, where the store's 30 s default would hold a request for minutes."""


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
    serve.add_argument(
        "--return-url",
        metavar="URL",
        help="send a customer back from the wallet here (303, with referenceNo and outcome); "
        "default: a status page",
    )
    serve.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="NETWORK",
        help="believe X-Forwarded-For only from a peer in this network (repeatable; "
        "default: never, the peer is the client)",
    )
    serve.add_argument(
        "--busy-timeout",
        type=float,
        default=SERVE_BUSY_TIMEOUT,
        metavar="SECONDS",
        help="SQLite: how long a write waits for another's lock before the request is answered "
        "503 (after the engine's retries; default: %(default)s)",
    )
    serve.add_argument(
        "--no-status-worker",
        dest="status_worker",
        action="store_false",
        help="run no status checks here: reconcile or relay --status-checks runs them",
    )
    add_log_format(serve)
    serve.set_defaults(handler=_serve, log_level=logging.INFO)  # a server says what it does
    prune = subparsers.add_parser(
        "prune-inbound",
        help="delete journalled inbound requests (inbound_attempt), and the status checks they "
        "asked for that finished (status_work), older than the retention",
    )
    prune.add_argument("--db", default=default_db(), help="database URL (default: %(default)s)")
    prune.add_argument(
        "--days",
        type=float,
        default=DEFAULT_RETENTION.days,
        help="keep this many days of requests (default: %(default)s)",
    )
    prune.set_defaults(handler=_prune)


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


def hide_configured_secrets(*more: str, logger: logging.Logger | None = None) -> None:
    """Blank in every log line (of ``logger``'s handlers, the root's by default) the merchant
    key and audit keys set in the environment, and ``more``: a message may carry one without
    any label that would give it away."""
    audit_secrets = [secret for _, _, secret in written_keys(os.environ.get(AUDIT_KEY_ENV, ""))]
    hide_in_logs([os.environ.get(KEY_ENV, ""), *audit_secrets, *more], logger)


def _serve(args: argparse.Namespace) -> int:
    require_extra("serve", "server", "uvicorn")
    import uvicorn  # the server extra, present: checked above

    credentials = credentials_from_env(args.nicepay_url)
    hide_configured_secrets()
    check_can_listen(args.host, args.port)
    try:
        app = NotificationApp(trusted_proxies=args.trusted_proxy)
    except ValueError as error:
        raise ConfigurationError(f"--trusted-proxy: {error}") from None
    store = writable_store(args.db, busy_timeout=args.busy_timeout)
    public = f"http://{args.host}:{args.port}"
    with httpx.Client(timeout=httpx.Timeout(15.0, connect=5.0)) as http:
        engine = Engine(store, flows=catalog(), event_types=EVENT_TYPES)
        watch_oldest_unsettled(engine)  # read only when an SDK's reader collects
        service = PaymentService(
            engine,
            NicepayClient(http, credentials, clock=engine.clock),
            store=store,
            notification_url=public + NOTIFICATION_PATH,
            callback_url=public + CALLBACK_PATH,
        )
        app.handler = NotificationHandler(
            service, allowed_sources=args.allow_from, return_url=args.return_url
        )
        write(f"serving {public}{NOTIFICATION_PATH} and {public}{CALLBACK_PATH}")
        worker = StatusWorker(service).running() if args.status_worker else nullcontext()
        with worker:
            uvicorn.run(
                app,
                host=args.host,
                port=args.port,
                log_config=None,
                lifespan="off",
                access_log=False,  # a request line may carry a token; inbound_attempt records it
                proxy_headers=False,  # the app reads X-Forwarded-For, from --trusted-proxy only
            )
    return 0


def writable_store(url: str, *, busy_timeout: float = SERVE_BUSY_TIMEOUT) -> SqlStore:
    """The store at ``url``, its schema current, once a write to it has gone through.

    Raises:
        StorageError: it cannot be reached, migrated or written to (``StorageUnavailable``
            when it is unreachable, read-only or locked).
    """
    store = SqlStore(url, sqlite_busy_timeout=busy_timeout, audit_keys=AuditKeys.from_env())
    try:  # a database that cannot be reached is reported in one line by the command
        store.create_schema()
        store.check_writable()
    except BaseException:
        store.dispose()
        raise
    return store


def _prune(args: argparse.Namespace) -> int:
    if args.days < 0:
        raise ConfigurationError("--days must not be negative")
    before = datetime.now(UTC) - timedelta(days=args.days)
    with open_store(args.db) as store:
        pruned = InboundJournal(store).prune(before)
        finished = prune_finished(store, before)
    write(f"pruned {pruned} inbound requests received before {before.isoformat()}")
    write(f"pruned {finished} status checks finished before {before.isoformat()}")
    return 0
