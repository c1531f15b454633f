"""One damaged row never stops the reconciler, on SQLite and PostgreSQL.

An instance in a state its flow does not know (or of a flow the engine does not run) is reported
and skipped; a provider call whose stored request is not JSON is repaired like any other; and
everything due after them is acted on in the same pass. The damage is written with plain SQL.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from adapters.nicepay.client import INQUIRY_PATH
from adapters.reconcile.deadlines import DEFAULT_LEASE, run_due
from adapters.reconcile.recovery import INTENT_GRACE, Reconciler
from fsm._payload import UnreadablePayload
from fsm.model import Instance
from fsm.store.sql import SqlStore
from fsm.store.tables import INSTANCE_TABLE
from tests.adapters.mock_nicepay import Forward, ServiceRig
from tests.adapters.values import payment_order
from tests.conftest import database

OWNER = "reconciler-under-test"
CHECKOUT_WINDOW = timedelta(minutes=15)


class ProcessStopped(Exception):
    """The merchant's process stopped while this call was on the way."""


def run_sql(store: SqlStore, statement: str, **values: Any) -> None:
    with store.engine.begin() as conn:
        assert conn.execute(text(statement), values).rowcount == 1


def claimed_by(store: SqlStore, instance_id: str) -> str | None:
    query = select(INSTANCE_TABLE.c.claimed_by).where(INSTANCE_TABLE.c.id == instance_id)
    with store.engine.connect() as conn:
        owner: str | None = conn.execute(query).scalar_one()
    return owner


def checkouts(rig: ServiceRig, count: int) -> list[str]:
    """Payments waiting at checkout, started a second apart: their deadlines fall in this order."""
    ids = []
    for n in range(count):
        ids.append(rig.engine.start("ewallet_payment", instance_id=f"pay-{n}", wallet="ovo").id)
        rig.clock.advance(timedelta(seconds=1))
    return ids


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("state", "limbo", "state 'limbo' is not a state of ewallet_payment"),
        ("flow", "retired_flow", "flow 'retired_flow' is not one this engine runs"),
        ("flow_version", 9, "flow ewallet_payment has no version 9 in this engine"),
    ],
)
def test_a_due_instance_nobody_can_act_on_is_skipped_and_the_pass_goes_on(
    rig: ServiceRig, column: str, value: str | int, problem: str
) -> None:
    damaged, *healthy = checkouts(rig, 4)
    store = database(rig.engine)
    statement = f"update flow_instance set {column} = :v where id = :i"  # noqa: S608 - fixed names
    run_sql(store, statement, v=value, i=damaged)
    rig.clock.advance(CHECKOUT_WINDOW)

    runs = run_due(rig.service, owner=OWNER)
    assert [run.instance_id for run in runs] == [damaged, *healthy]  # earliest deadline first
    skipped, *acted = runs
    assert skipped.error == f"skipped: {problem}"
    assert skipped.before == skipped.after == store.get(damaged).state
    for run in acted:
        assert run.error is None
        assert run.after != run.before
        assert rig.engine.get(run.instance_id).state == run.after
    # reported once per lease, not in every pass: its claim is kept until the lease runs out
    assert claimed_by(store, damaged) == OWNER
    assert run_due(rig.service, owner=OWNER) == []
    rig.clock.advance(DEFAULT_LEASE + timedelta(seconds=1))
    (again,) = run_due(rig.service, owner="another-reconciler")
    assert (again.instance_id, again.error) == (damaged, f"skipped: {problem}")


def stopped_inquiry(rig: ServiceRig, payment_id: str, reference_no: str) -> Instance:
    """A DANA payment whose process stopped with its inquiry on the way; NICEPAY says paid."""
    order = payment_order("dana", reference_no=reference_no)
    payment = rig.service.start_payment(order, payment_id=payment_id).instance

    def stopped(request: httpx.Request, nicepay: Forward) -> httpx.Response:
        nicepay(request)
        raise ProcessStopped

    rig.line.intercept(INQUIRY_PATH, stopped)
    with pytest.raises(ProcessStopped):
        rig.service.check_status(payment.id)
    rig.sim.approve(payment.tx_id or "")
    return payment


def test_a_damaged_row_never_stops_the_repairs(rig: ServiceRig) -> None:
    limbo = stopped_inquiry(rig, "pay-limbo", "ORD-1")
    garbled = stopped_inquiry(rig, "pay-garbled", "ORD-2")
    healthy = stopped_inquiry(rig, "pay-healthy", "ORD-3")
    store = database(rig.engine)
    run_sql(store, "update flow_instance set state = 'limbo' where id = :i", i=limbo.id)
    run_sql(
        store,
        "update call_intent set request = '{\"tXid\": ' where instance_id = :i "
        "and finished_at is null",
        i=garbled.id,
    )
    (open_call,) = [i for i in rig.service.calls.of_instance(garbled.id) if i.finished_at is None]
    assert isinstance(open_call.request, UnreadablePayload)
    rig.clock.advance(INTENT_GRACE + timedelta(seconds=1))

    done = Reconciler(rig.service, owner=OWNER).run_once()
    by_id = {repair.instance_id: repair for repair in done.repairs}
    assert list(by_id) == [limbo.id, garbled.id, healthy.id]  # oldest call first
    skipped = by_id[limbo.id]
    assert (skipped.outcome, skipped.after) == ("skipped", "limbo")
    assert skipped.error == "skipped: state 'limbo' is not a state of ewallet_payment"
    assert [i.call for i in rig.service.calls.of_instance(limbo.id) if i.finished_at is None] == [
        "inquiry"
    ]
    for payment in (garbled, healthy):
        assert (by_id[payment.id].error, by_id[payment.id].after) == (None, "paid")
        assert all(i.finished_at is not None for i in rig.service.calls.of_instance(payment.id))
    assert done.failed  # the skipped row is reported: `reconcile --once` exits 1
    skipped_deadlines = [run for run in done.deadlines if run.instance_id == limbo.id]
    assert all(run.error and run.error.startswith("skipped:") for run in skipped_deadlines)
