"""A process whose forked child exits without using the store: do the parent's sessions live?

Run as ``python -m tests.fsm.fork_worker URL [ADMIN_URL]``. The parent keeps several connections,
forks a child that exits the ordinary way (``sys.exit``: finalizers and ``atexit`` run, as in any
script or forked worker), then fires an event. It prints a JSON report: on PostgreSQL the
store's server sessions (by ``application_name``) before the fork, after the child's exit and
after the fire, and the fire's sequence number.
"""

from __future__ import annotations

import json
import os
import sys
import time

from fsm import Engine, ManualClock, SqlStore
from fsm.flows import FLOWS
from tests.fsm.conftest import T0
from tests.fsm.sessions import Sessions, keep_several

KEPT = 3


def main(url: str, admin_url: str | None) -> None:
    store = SqlStore(url)
    engine = Engine(store, flows=FLOWS, clock=ManualClock(T0))
    pid = engine.start("ewallet_payment", wallet="ovo", amount=1000).id
    keep_several(store, KEPT)
    name = store.engine.url.query.get("application_name")
    sessions = Sessions(str(name), admin_url) if admin_url else None

    def backends() -> list[int]:
        return sorted(sessions.backends()) if sessions else []

    before = backends()
    child = os.fork()
    if child == 0:
        sys.exit(0)  # never touches the store; exits as any process does
    os.waitpid(child, 0)
    time.sleep(0.3)  # whatever the child's exit sent the server has taken effect by now
    after_exit = backends()
    seq = engine.fire(pid, "send_registration", actor="merchant", idempotency_key="r").record.seq
    report = {"before": before, "after_exit": after_exit, "after_fire": backends(), "seq": seq}
    print(json.dumps(report))  # noqa: T201 -- the report goes to the test on stdout
    store.dispose()
    if sessions:
        sessions.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
