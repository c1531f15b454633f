"""Running the installed ``ewallet-fsm`` command in subprocesses, and databases to run it on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fsm import Actor, Engine, ManualClock, SqlStore
from fsm.flows import FLOWS

EXECUTABLE = Path(sys.executable).parent / "ewallet-fsm"
PAST = datetime(2020, 1, 6, 3, 0, tzinfo=UTC)
"""Where set-up clocks start: every deadline set then has long passed."""
CREDENTIALS = {"EWALLET_FSM_IMID": "IONPAYTEST", "EWALLET_FSM_MERCHANT_KEY": "test-merchant-key"}
TO_STATUS_CHECK: list[tuple[str, Actor]] = [
    ("send_registration", Actor.MERCHANT),
    ("accept_registration", Actor.PROVIDER_RESPONSE),
    ("request_payment", Actor.MERCHANT),
    ("push_to_app", Actor.PROVIDER_RESPONSE),
    ("check_status", Actor.TIMER),
]
"""An OVO payment from checkout to ``status_check_requested``."""


@dataclass(frozen=True)
class Ran:
    """What one run of the command did."""

    argv: tuple[str, ...]
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def assert_one_line_error(self) -> str:
        """The run failed with exactly one line on stderr, nothing on stdout; that line."""
        assert self.code != 0, self
        assert self.out == "", self
        assert "Traceback" not in self.err, self
        lines = self.err.splitlines()
        assert len(lines) == 1, self
        return lines[0]


def ewallet_fsm(*argv: str, cwd: Path, env: dict[str, str] | None = None) -> Ran:
    """Run the installed command with ``argv``; ``$EWALLET_FSM_DB`` is never inherited."""
    environment = {k: v for k, v in os.environ.items() if k != "EWALLET_FSM_DB"}
    environment.update(env or {})
    done = subprocess.run(  # noqa: S603 - our own console script, arguments from the tests
        [str(EXECUTABLE), *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        timeout=120,
        check=False,
    )
    return Ran(tuple(argv), done.returncode, done.stdout, done.stderr)


def ewallet_fsm_many(
    runs: Sequence[Sequence[str]], *, cwd: Path, env: dict[str, str] | None = None
) -> list[Ran]:
    """Run several commands at once (each in its own process), in the order given."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda argv: ewallet_fsm(*argv, cwd=cwd, env=env), runs))


def engine_at(url: str, start: datetime = PAST) -> tuple[SqlStore, Engine, ManualClock]:
    """A store at ``url`` with its schema, and an engine on a manual clock from ``start``."""
    store = SqlStore(url)
    store.create_schema()
    clock = ManualClock(start)
    return store, Engine(store, flows=FLOWS, clock=clock), clock


def awaiting_check(engine: Engine, clock: ManualClock, pid: str = "pay-1") -> str:
    """An OVO payment in ``status_check_requested``, where an operator may settle it."""
    engine.start("ewallet_payment", instance_id=pid, wallet="ovo", amount=25000)
    registered = {"tx_id": f"TX-{pid}", "reference_no": f"ORD-{pid}"}
    for event, actor in TO_STATUS_CHECK:
        clock.advance(timedelta(seconds=10))
        payload = registered if event == "accept_registration" else None
        engine.fire(pid, event, actor=actor, idempotency_key=event, payload=payload)
    return pid
