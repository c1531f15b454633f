"""The commands that run the status checks requests ask for: ``serve`` in a thread of its own,
``relay --status-checks`` and ``reconcile``, each a real process on one SQLite file, asking the
loopback simulator, which counts the inquiries it answers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from adapters.inbound.asgi import NOTIFICATION_PATH
from adapters.reconcile.work import WorkStatus
from fsm.model import Instance
from tests.adapters.counted_nicepay import counted_inquiries
from tests.adapters.inbound_rig import WAIT, Replicas, open_replicas, run_cli, serving


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'shop.sqlite3'}"


@pytest.fixture
def shop(db: str) -> Iterator[Replicas]:
    with counted_inquiries() as nicepay, open_replicas(db, nicepay, count=1) as shop:
        yield shop


def settings(shop: Replicas, db: str) -> tuple[tuple[str, ...], dict[str, str]]:
    """The database and NICEPAY arguments of a command on the shop's database, and its secrets."""
    config = shop.nicepay.config
    env = {
        "EWALLET_FSM_IMID": config.imid,
        "EWALLET_FSM_MERCHANT_KEY": config.merchant_key.get_secret_value(),
    }
    return ("--db", db, "--nicepay-url", shop.nicepay.url), env


def notified(shop: Replicas, url: str, reference_no: str) -> Instance:
    """A payment NICEPAY holds as paid, its notification posted to the served ``url``."""
    payment = shop.start(reference_no)
    assert shop.nicepay.sim.approve(payment.tx_id or "")
    response = httpx.post(url + NOTIFICATION_PATH, data=shop.captured(payment), timeout=WAIT)
    assert response.status_code == 200
    return payment


def eventually(done: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT
    while not done() and time.monotonic() < deadline:
        time.sleep(0.05)
    return done()


def test_serve_runs_the_checks_its_notifications_ask_for(shop: Replicas, db: str) -> None:
    arguments, env = settings(shop, db)
    with serving(*arguments, env=env) as served:
        payment = notified(shop, served.url, "SERVE-WORKS")
        assert eventually(lambda: shop.engine.get(payment.id).state == "paid")
    assert shop.inquiries(payment) == 1
    (done,) = shop.service.status_work.items(instance_id=payment.id)
    assert done.status == WorkStatus.DONE


def test_without_its_worker_serve_leaves_the_checks_to_relay_and_reconcile(
    shop: Replicas, db: str
) -> None:
    arguments, env = settings(shop, db)
    with serving(*arguments, "--no-status-worker", env=env) as served:
        first = notified(shop, served.url, "BY-RELAY-1")
        second = notified(shop, served.url, "BY-RELAY-2")
    waiting = shop.service.status_work.items(status=WorkStatus.PENDING)
    assert {item.instance_id for item in waiting} == {first.id, second.id}
    assert (shop.inquiries(first), shop.inquiries(second)) == (0, 0)

    relayed = run_cli("relay", "--once", "--status-checks", "--sink", "log", *arguments, env=env)
    assert relayed.returncode == 0, relayed.stderr
    assert "status checks: 2 done, 0 to retry, 0 abandoned" in relayed.stdout
    assert {shop.engine.get(p.id).state for p in (first, second)} == {"paid"}

    third = notified(shop, shop.urls[0], "BY-RECONCILE")  # the rig's endpoint runs no worker
    reconciled = run_cli("reconcile", "--once", *arguments, env=env)
    assert reconciled.returncode == 0, reconciled.stderr
    assert "status checks: 1 done" in reconciled.stdout
    assert shop.engine.get(third.id).state == "paid"
    assert [shop.inquiries(p) for p in (first, second, third)] == [1, 1, 1]
