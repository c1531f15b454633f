"""``ewallet-fsm history`` and ``replay``: what happened to a stored instance.

Both read the database as it is (never creating or migrating one), and report a damaged row
(a payload that is not JSON, a state its flow does not know) instead of stopping at it.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Sequence
from typing import Any

from adapters.cli._catalog import catalog
from adapters.cli._output import (
    aware_time,
    default_db,
    iso,
    open_existing,
    table,
    write,
    write_json,
)
from adapters.cli._verify import chain_json
from adapters.reconcile.journal import CallIntent, CallJournal
from fsm._payload import UnreadablePayload
from fsm.chain.verify import verify_chains
from fsm.clock import SystemClock
from fsm.errors import RejectReason
from fsm.model import Instance, RejectedEvent, TransitionRecord
from fsm.refunds import RefundRequestStep, refund_requests, refunded_total
from fsm.replay import Verdict, replay_instance
from fsm.store.sql import SqlStore


def register(subparsers: Any) -> None:
    """Add the record commands."""
    history = subparsers.add_parser("history", help="show an instance's transitions and refusals")
    _common(history)
    history.set_defaults(handler=_history)

    replay = subparsers.add_parser(
        "replay", help="rebuild an instance's state from its log and verify every step"
    )
    _common(replay)
    cut = replay.add_mutually_exclusive_group()
    cut.add_argument("--until", type=int, metavar="N", help="state as of step N")
    cut.add_argument("--at", metavar="TIME", help="state as of an ISO 8601 time with a zone")
    replay.set_defaults(handler=_replay)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="instance id")
    parser.add_argument("--db", default=default_db(), help="database URL (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _opened(
    handler: Callable[[argparse.Namespace, SqlStore], int],
) -> Callable[[argparse.Namespace], int]:
    """``handler`` run on the existing store at ``--db``, whose connections are closed after."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        with open_existing(args.db) as store:
            return handler(args, store)

    return run


@_opened
def _history(args: argparse.Namespace, store: SqlStore) -> int:
    instance = store.get(args.id)
    records, refused = store.history(args.id), store.rejections(args.id)
    # Only read here: the clock would time new calls, and this journal makes none.
    calls = CallJournal(store, clock=SystemClock()).of_instance(args.id)
    refunds = refund_requests(records)
    unknown = store.count_rejections(RejectReason.UNKNOWN_STATUS, instance_id=args.id)
    damaged = damage_notes(instance, records, refused, calls)
    if args.json:
        write_json(
            {
                "instance": instance_json(instance),
                "transitions": [record_json(r) for r in records],
                "rejected": [rejected_json(r) for r in refused],
                "calls": [intent_json(c) for c in calls],
                "refund_requests": [refund_request_json(r) for r in refunds],
                "unknown_status_count": unknown,
                "damaged": damaged,
            }
        )
        return 0
    write(
        f"{instance.id}  flow={instance.flow}  wallet={instance.wallet}  state={instance.state}"
        f"  flow_version={instance.flow_version}"
    )
    write(f"referenceNo={instance.reference_no}  tXid={instance.tx_id}  amount={instance.amount}")
    if refunds or instance.refunded_amount:
        write(refunded_total(instance))
    if unknown:
        write(f"inquiry answers with an unknown status code: {unknown}")
    write()
    rows = [
        (r.seq, iso(r.occurred_at), r.event, r.source, r.dest, r.actor, r.idempotency_key)
        for r in records
    ]
    write(table(("seq", "time (UTC)", "event", "from", "to", "actor", "key"), rows))
    if refused:
        write()
        write("refused events:")
        refusals = [
            (iso(r.occurred_at), r.event, r.state, r.actor, r.reason, r.detail) for r in refused
        ]
        write(table(("time (UTC)", "event", "in state", "actor", "reason", "detail"), refusals))
    if refunds:
        write()
        write("refund requests:")
        asked = [
            (r.seq, iso(r.occurred_at), r.request_id, r.amount, r.requested_by, r.actor, r.reason)
            for r in refunds
        ]
        write(table(("step", "time (UTC)", "request", "amount", "by", "actor", "reason"), asked))
    if calls:
        write()
        write("NICEPAY calls (an open one was cut off; reconcile repairs it):")
        made = [
            (
                iso(c.recorded_at),
                c.call,
                c.reference_no,
                c.amount,
                c.call_key,
                c.outcome or _open(c),
            )
            for c in calls
        ]
        write(table(("time (UTC)", "call", "referenceNo", "amount", "key", "outcome"), made))
    _write_damage(damaged)
    return 0


def damage_notes(
    instance: Instance,
    records: Sequence[TransitionRecord],
    refused: Sequence[RejectedEvent] = (),
    calls: Sequence[CallIntent] = (),
) -> list[str]:
    """What of the instance's stored rows could not be read whole, each naming the row."""
    lineage = catalog().lineage(instance.flow) if instance.flow in catalog() else None
    flow = None if lineage is None else lineage.versions.get(instance.flow_version)
    notes = []
    if lineage is None:
        notes.append(f"instance: flow {instance.flow!r} is not a built-in flow")
    elif flow is None:
        notes.append(f"instance: flow {instance.flow} has no version {instance.flow_version}")
    elif instance.state not in flow.state_map:
        notes.append(f"instance: state {instance.state!r} is not a state of {flow.name}")
    notes += [
        f"step {r.seq}: its stored payload is {r.payload.problem}"
        for r in records
        if isinstance(r.payload, UnreadablePayload)
    ]
    notes += [
        f"refused {r.event!r} at {iso(r.occurred_at)}: its stored payload is {r.payload.problem}"
        for r in refused
        if isinstance(r.payload, UnreadablePayload)
    ]
    notes += [
        f"{c.call} call {c.id}: its stored request is {c.request.problem}"
        for c in calls
        if isinstance(c.request, UnreadablePayload)
    ]
    return notes


def _write_damage(notes: Sequence[str]) -> None:
    if notes:
        write()
        write("damaged rows (read as far as they go):")
        for note in notes:
            write(f"  {note}")


@_opened
def _replay(args: argparse.Namespace, store: SqlStore) -> int:
    instance = store.get(args.id)
    result = replay_instance(
        catalog().lineage(instance.flow),
        instance,
        store.history(args.id),
        until_seq=args.until,
        until_time=aware_time(args.at, "--at"),
        chain=verify_chains(store, [args.id])[args.id],
    )
    divergence = None
    if result.divergence is not None:
        divergence = {
            "index": result.divergence.index,
            "seq": result.divergence.seq,
            "reason": result.divergence.reason,
        }
    if args.json:
        write_json(
            {
                "instance": instance.id,
                "flow": result.flow,
                "verdict": str(result.verdict),
                "state": result.state,
                "applied": result.applied,
                "versions": list(result.versions),
                "divergence": divergence,
                "damaged": list(result.damaged),
                "chain": None if result.chain is None else chain_json(result.chain),
            }
        )
    else:
        write(
            f"{instance.id}: {result.verdict}; state {result.state} after {result.applied} steps"
            f" under {_versions(result.flow, result.versions)}"
        )
        if result.chain is not None:
            write(f"audit chain {result.chain.describe()}")
        if divergence:
            seq = divergence["seq"]
            where = "the stored row" if seq is None else f"step {seq}"
            write(f"first divergence at {where}: {divergence['reason']}")
        for note in result.damaged:
            write(f"damaged row at {note}")
    return 0 if result.verdict is Verdict.CONSISTENT else 1


def instance_json(instance: Instance) -> dict[str, Any]:
    """An instance as JSON data."""
    return {
        "id": instance.id,
        "flow": instance.flow,
        "state": instance.state,
        "version": instance.version,
        "flow_version": instance.flow_version,
        "wallet": instance.wallet,
        "amount": instance.amount,
        "currency": instance.currency,
        "reference_no": instance.reference_no,
        "tx_id": instance.tx_id,
        "refunded_amount": instance.refunded_amount,
        "deadline_at": iso(instance.deadline_at),
        "created_at": iso(instance.created_at),
        "updated_at": iso(instance.updated_at),
    }


def record_json(record: TransitionRecord) -> dict[str, Any]:
    """A log record as JSON data."""
    return {
        "seq": record.seq,
        "occurred_at": iso(record.occurred_at),
        "event": record.event,
        "from": record.source,
        "to": record.dest,
        "actor": str(record.actor),
        "idempotency_key": record.idempotency_key,
        "payload": dict(record.payload),
        "flow_version": record.flow_version,
        "fingerprint": record.fingerprint,
    }


def _versions(flow: str, versions: Sequence[int]) -> str:
    """``ewallet_payment v1`` or ``ewallet_payment v1 -> v2``: the versions a log ran under."""
    return f"{flow} " + (" -> ".join(f"v{v}" for v in versions) or "(no steps)")


def rejected_json(rejected: RejectedEvent) -> dict[str, Any]:
    """A refused event as JSON data."""
    return {
        "occurred_at": iso(rejected.occurred_at),
        "event": rejected.event,
        "state": rejected.state,
        "version": rejected.version,
        "actor": str(rejected.actor),
        "idempotency_key": rejected.idempotency_key,
        "reason": str(rejected.reason),
        "detail": rejected.detail,
        "payload": dict(rejected.payload),
    }


def _open(intent: CallIntent) -> str:
    return "OPEN" if intent.left_open_at is None else "OPEN (answer lost)"


def intent_json(intent: CallIntent) -> dict[str, Any]:
    """A recorded NICEPAY call as JSON data."""
    return {
        "call": intent.call,
        "reference_no": intent.reference_no,
        "amount": intent.amount,
        "tx_id": intent.tx_id,
        "request": dict(intent.request),
        "call_key": intent.call_key,
        "recorded_at": iso(intent.recorded_at),
        "finished_at": iso(intent.finished_at),
        "left_open_at": iso(intent.left_open_at),
        "outcome": intent.outcome,
    }


def refund_request_json(request: RefundRequestStep) -> dict[str, Any]:
    """A refund request from the log as JSON data."""
    return {
        "seq": request.seq,
        "occurred_at": iso(request.occurred_at),
        "request_id": request.request_id,
        "amount": request.amount,
        "reason": request.reason,
        "requested_by": request.requested_by,
        "actor": str(request.actor),
    }
