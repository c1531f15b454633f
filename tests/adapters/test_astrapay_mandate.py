"""Only verified sources set an AstraPay mandate: a link notification (T4), or an operator.

The browser's return is unauthenticated: a mandate it carries is recorded as a hint an operator
can read, and sets or changes nothing. On SQLite and PostgreSQL, against the simulator.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from adapters.inbound.handler import NotificationHandler
from adapters.inbound.parsing import InboundRequest
from fsm.definition import Actor
from fsm.errors import ActorNotAllowed, InvalidInstanceData, RejectReason, TransitionNotAllowed
from fsm.model import Instance
from tests.adapters.mock_nicepay import ServiceRig
from tests.adapters.pages import shown_outcome
from tests.adapters.values import MANDATE, link_notification, link_order, payment_order
from tests.adapters.values import form_request as form

FORGED = "6600000000001"


def link_notified(mandate: str = "") -> InboundRequest:
    """NICEPAY's verified link notification (T4) for ``LNK-1``, with or without a mandate."""
    return form(link_notification("LNK-1", mandateID=mandate))


def link_return(mandate: str, reference_no: str = "LNK-1") -> InboundRequest:
    """A browser return to callBackUrl claiming a mandate: anybody can send it."""
    params = {"referenceNo": reference_no, "resultCd": "0000", "mandateID": mandate}
    return InboundRequest(query=urlencode(params))


def missing_mandate(rig: ServiceRig, handler: NotificationHandler) -> Instance:
    """A link NICEPAY confirmed without a mandate."""
    link = rig.service.start_link(link_order()).instance
    assert handler.handle_notification(link_notified()).status == 200
    waiting = rig.engine.get(link.id)
    assert (waiting.state, waiting.mandate) == ("mandate_missing", None)
    return waiting


def hinted_mandates(rig: ServiceRig, link_id: str) -> list[str]:
    return [
        str(r.payload.get("mandateID"))
        for r in rig.engine.rejections(link_id)
        if r.reason is RejectReason.HINT
    ]


def test_a_forged_return_cannot_set_a_missing_mandate(
    rig: ServiceRig, handler: NotificationHandler
) -> None:
    link = missing_mandate(rig, handler)
    reply = handler.handle_callback(link_return(FORGED))
    assert (reply.status, shown_outcome(reply.html)) == (200, "pending")
    after = rig.engine.get(link.id)
    assert (after.state, after.version, after.mandate) == ("mandate_missing", link.version, None)
    assert hinted_mandates(rig, link.id) == [FORGED]  # for an operator to see, nothing more


def test_a_return_before_the_notification_leaves_the_mandate_to_an_operator(
    rig: ServiceRig, handler: NotificationHandler
) -> None:
    link = rig.service.start_link(link_order()).instance
    assert shown_outcome(handler.handle_callback(link_return(MANDATE)).html) == "pending"
    assert rig.engine.get(link.id).state == "link_requested"
    assert handler.handle_notification(link_notified()).status == 200
    after = rig.engine.get(link.id)
    assert (after.state, after.mandate) == ("mandate_missing", None)
    assert hinted_mandates(rig, link.id) == [MANDATE]


def test_a_return_never_changes_a_verified_mandate(
    rig: ServiceRig, handler: NotificationHandler
) -> None:
    link = rig.service.start_link(link_order()).instance
    assert handler.handle_notification(link_notified(MANDATE)).status == 200
    handler.handle_callback(link_return(FORGED))
    assert rig.engine.get(link.id).mandate == MANDATE


def test_the_browser_may_not_fire_attach_mandate(
    rig: ServiceRig, handler: NotificationHandler
) -> None:
    link = missing_mandate(rig, handler)
    with pytest.raises(ActorNotAllowed):
        rig.engine.fire(
            link.id,
            "attach_mandate",
            actor=Actor.BROWSER_CALLBACK,
            idempotency_key="browser",
            payload={"mandate": FORGED},
        )
    assert rig.engine.get(link.id).mandate is None


def test_an_operator_attaches_the_mandate_recorded_with_who_and_why(
    rig: ServiceRig, handler: NotificationHandler
) -> None:
    link = missing_mandate(rig, handler)
    why = "confirmed with AstraPay support, ticket 4411"
    attached = rig.service.attach_mandate(link.id, MANDATE, by="ops:rina", reason=why)
    assert (attached.state, attached.record.actor) == ("linked", Actor.OPERATOR)
    assert dict(attached.record.payload) == {"mandate": MANDATE, "by": "ops:rina", "reason": why}
    assert rig.engine.get(link.id).mandate == MANDATE

    again = rig.service.attach_mandate(link.id, MANDATE, by="ops:rina", reason=why)
    assert again.duplicate
    with pytest.raises(TransitionNotAllowed):  # a linked account's mandate is not replaced
        rig.service.attach_mandate(link.id, FORGED, by="ops:rina", reason="typo")
    assert rig.engine.get(link.id).mandate == MANDATE

    order = payment_order("astrapay", "ORD-A", link_id=link.id)
    assert rig.service.start_payment(order).step.fields["mandateID"] == MANDATE


@pytest.mark.parametrize(
    ("mandate", "by", "reason"),
    [("", "ops", "why"), (MANDATE, " ", "why"), (MANDATE, "ops", ""), ("7" * 65, "ops", "why")],
    ids=["no-mandate", "no-one", "no-reason", "too-long"],
)
def test_an_operator_request_without_mandate_who_or_why_changes_nothing(
    rig: ServiceRig, handler: NotificationHandler, mandate: str, by: str, reason: str
) -> None:
    link = missing_mandate(rig, handler)
    with pytest.raises(InvalidInstanceData):
        rig.service.attach_mandate(link.id, mandate, by=by, reason=reason)
    after = rig.engine.get(link.id)
    assert (after.version, after.mandate) == (link.version, None)


def test_only_an_account_link_takes_a_mandate(rig: ServiceRig) -> None:
    payment = rig.engine.start("astrapay_payment", wallet="astrapay", amount="12000")
    with pytest.raises(InvalidInstanceData, match="not an AstraPay account link"):
        rig.service.attach_mandate(payment.id, MANDATE, by="ops", reason="why")
