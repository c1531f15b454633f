"""The README's FastAPI service, run as written: the endpoints mounted under a prefix, a payment
started over HTTP, NICEPAY's notification taken at the mounted URL, and the payment's event
reaching the service's consumer through the relay thread, which tells the customer and confirms
the order; the consumer skips an event delivered again, and takes an outcome left with nothing
to confirm without an error the relay would retry."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn

from adapters.inbound.asgi import route_path
from fsm.events import Event
from fsm.flows import EVENT_TYPES
from fsm.store.sql import SqlStore
from tests.adapters.inbound_rig import free_port
from tests.adapters.mock_nicepay import Nicepay, service_rig
from tests.adapters.values import FORM, payment_order, signed_notification

README = Path(__file__).resolve().parents[2] / "README.md"
MARKER = "<!-- fastapi-example:"


def readme_example() -> dict[str, Any]:
    """The README's example block, executed: its names."""
    text = README.read_text(encoding="utf-8")
    after = text[text.index(MARKER) :]
    code = re.search(r"```python\n(.*?)```", after, re.DOTALL)
    assert code is not None
    names: dict[str, Any] = {"__name__": "readme_fastapi_example"}
    exec(compile(code.group(1), str(README), "exec"), names)  # noqa: S102 - our own README
    return names


@contextmanager
def served(app: Any) -> Iterator[httpx.Client]:
    """``app`` served by uvicorn on loopback, its lifespan run; a client on its address."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0) as client:
            for _ in range(300):  # until it listens (bounded)
                if server.started:
                    break
                threading.Event().wait(0.05)
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_the_readme_fastapi_service_starts_pays_hears_of_the_payment_and_confirms_it(
    store: SqlStore, nicepay: Nicepay
) -> None:
    rig = service_rig(store, nicepay, event_types=EVENT_TYPES)
    example = readme_example()
    heard: list[Event] = []
    told: list[Event] = []
    confirmed = threading.Event()
    consumer = example["on_outcome"](rig.service, told.append)

    def on_event(event: Event) -> None:
        heard.append(event)
        consumer(event)
        if event.type == "payment.confirmed":
            confirmed.set()

    app = example["create_app"](rig.service, store, on_event)
    order = payment_order("dana", "ORD-API")
    with served(app) as client:
        started = client.post("/orders/pay", json=order.model_dump(mode="json"))
        assert started.status_code == 200, started.text
        payment = rig.engine.get(started.json()["payment_id"])
        assert started.json()["next"]["kind"] in {"redirect", "form", "app_link"}
        rig.sim.approve(payment.tx_id or "")

        health = client.get("/payments/healthz")
        body = urlencode(signed_notification(payment)).encode()
        notified = client.post(
            "/payments/nicepay/notification", content=body, headers={"content-type": FORM}
        )
        unmounted = client.post("/nicepay/notification", content=body)
        assert confirmed.wait(timeout=30), heard

    assert (health.status_code, notified.status_code) == (200, 200), notified.text
    assert unmounted.status_code == 404
    assert rig.engine.get(payment.id).state == "order_confirmed"
    assert [(event.type, event.payment_id, event.amount) for event in heard] == [
        ("payment.paid", payment.id, payment.amount),
        ("payment.confirmed", payment.id, payment.amount),
    ]
    assert [event.type for event in told] == ["payment.paid"]  # told before it was recorded
    last = rig.engine.history(payment.id)[-1]
    assert (last.event, last.actor) == ("confirm_order", "merchant")

    consumer(heard[0])  # delivered again (a relay that stopped before recording it)
    assert [event.type for event in told] == ["payment.paid"]  # nobody told twice
    assert rig.engine.history(payment.id)[-1] == last


def test_the_readme_consumer_takes_an_outcome_left_with_nothing_to_confirm(
    store: SqlStore, nicepay: Nicepay
) -> None:
    """An outcome's event consumed after the payment moved off it (reversed meanwhile; here,
    one not paid at all): the customer is told, no error reaches the relay, nothing changes."""
    rig = service_rig(store, nicepay, event_types=EVENT_TYPES)
    told: list[Event] = []
    consumer = readme_example()["on_outcome"](rig.service, told.append)
    pending = rig.service.start_payment(payment_order("dana", "ORD-LATE")).instance
    stale = Event(
        id="evt-late",
        type="payment.paid",
        flow=pending.flow,
        payment_id=pending.id,
        reference=pending.reference_no,
        amount=pending.amount,
        currency="IDR",
        wallet="dana",
        state="paid",
        previous_state=pending.state,
        transition="settle",
        version=pending.version + 1,
        occurred_at=rig.engine.clock.now(),
    )
    before = rig.engine.get(pending.id)
    consumer(stale)
    assert told == [stale]
    assert rig.engine.get(pending.id) == before
    consumer(stale)  # and it is not taken twice
    assert told == [stale]


@pytest.mark.parametrize(
    ("path", "root", "expected"),
    [
        ("/payments/nicepay/notification", "/payments", "/nicepay/notification"),
        ("/nicepay/notification", "/payments", "/nicepay/notification"),  # already stripped
        ("/payments", "/payments", "/"),
        ("/paymentsx/nicepay/notification", "/payments", "/paymentsx/nicepay/notification"),
        ("/nicepay/callback", "", "/nicepay/callback"),
    ],
)
def test_the_endpoints_are_found_below_the_mount_point(path: str, root: str, expected: str) -> None:
    assert route_path({"path": path, "root_path": root}) == expected
