"""Who refunded what and why, and the refunded total, in ``history``, the audit report and the
payment-path diagram, on SQLite and PostgreSQL.

The payment is built with the engine alone: paid, then two refund requests (one by an operator
whose reason tries to break out of the HTML and the DOT text), each followed by the refund the
inquiry reported.
"""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import pytest

from adapters.cli import main
from fsm import Actor, Engine, SqlStore, replay_instance
from fsm.flows import EWALLET_PAYMENT, FLOWS
from fsm.model import Instance
from fsm.refunds import REQUEST_REFUND
from fsm.render.audit import audit_html
from fsm.render.diagram import path_to_dot
from tests.fsm.test_engine import TO_PAID, drive, start_ovo

EVIL = '</td><script>alert(1)</script>" ] x [label="'


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(list(argv))
    return code, out.getvalue()


def request_then_refund(
    engine: Engine, pid: str, n: int, actor: Actor, payload: dict[str, Any], total: str
) -> None:
    engine.fire(
        pid,
        REQUEST_REFUND,
        actor=actor,
        idempotency_key=f"refund:rf-{n}",
        payload={"request_id": f"rf-{n}", **payload},
    )
    engine.fire(
        pid,
        "refund_payment",
        actor=Actor.STATUS_INQUIRY,
        idempotency_key=f"inquiry:refund:{total}",
        payload={"status": "2", "cancelAmt": total, "refunded_amount": total},
    )


@pytest.fixture
def refunded(store: SqlStore) -> Instance:
    engine = Engine(store, flows=FLOWS)
    pid = start_ovo(engine, "pay-refunded")
    drive(engine, pid, TO_PAID)
    first = {"amount": "50000", "reason": "one shirt returned", "requested_by": "siti@shop"}
    request_then_refund(engine, pid, 1, Actor.MERCHANT, first, "50000")
    second = {"amount": "30000", "reason": EVIL, "requested_by": "on-call <b>ops</b>"}
    request_then_refund(engine, pid, 2, Actor.OPERATOR, second, "80000")
    return store.get(pid)


def test_history_lists_the_refund_requests_and_the_total(
    store: SqlStore, refunded: Instance
) -> None:
    code, out = run_cli("history", refunded.id, "--db", store.url)
    assert code == 0
    assert "80000 of 150000 IDR refunded" in out
    requests = out.split("refund requests:")[1].split("NICEPAY calls")[0]
    (first,) = [line.split() for line in requests.splitlines() if " rf-1 " in line]
    assert first[2:] == ["rf-1", "50000", "siti@shop", "merchant", "one", "shirt", "returned"]
    (second,) = [line for line in requests.splitlines() if " rf-2 " in line]
    assert "on-call <b>ops</b>  operator" in second
    code, out = run_cli("history", refunded.id, "--db", store.url, "--json")
    data = json.loads(out)
    assert data["instance"]["refunded_amount"] == "80000"
    assert [(r["request_id"], r["amount"], r["actor"]) for r in data["refund_requests"]] == [
        ("rf-1", "50000", "merchant"),
        ("rf-2", "30000", "operator"),
    ]
    assert data["refund_requests"][1]["reason"] == EVIL


def test_the_audit_report_shows_who_refunded_what_and_why(
    store: SqlStore, refunded: Instance
) -> None:
    history = store.history(refunded.id)
    result = replay_instance(EWALLET_PAYMENT, refunded, history)
    html = audit_html(EWALLET_PAYMENT, refunded, history, [], result, svg="<svg></svg>")
    assert "<script" not in html
    assert "<b>ops</b>" not in html
    assert "80000 of 150000 IDR refunded" in html
    table = html.split('<table id="refunds"', 1)[1].split("</table>", 1)[0]
    assert "rf-1" in table
    assert "siti@shop" in table
    assert "one shirt returned" in table
    assert "&lt;/td&gt;&lt;script&gt;" in table
    assert "on-call &lt;b&gt;ops&lt;/b&gt;" in table


def test_the_path_caption_shows_the_total_and_each_request(
    store: SqlStore, refunded: Instance
) -> None:
    dot = path_to_dot(EWALLET_PAYMENT, refunded, store.history(refunded.id))
    caption = dot.split("label=", 1)[1].split("\n", 1)[0]
    assert "80000 of 150000 IDR refunded" in caption
    assert "refund 50000 requested by siti@shop (merchant, request rf-1): one shirt" in caption
    assert "refund 30000 requested by on-call <b>ops</b> (operator, request rf-2)" in caption
    assert '\\" ] x [label=\\"' in caption  # the reason's quotes stay inside the label
