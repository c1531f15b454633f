"""``ewallet-fsm diagram`` and ``ewallet-fsm audit``: flows and payments drawn for auditors."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.cli._catalog import catalog
from adapters.cli._output import default_db, open_existing, write, write_json
from adapters.cli._verify import chain_json
from fsm.chain.verify import verify_chains
from fsm.definition import load_flow_file
from fsm.flows import GUARDS, RENAMED_ACTORS
from fsm.render.audit import audit_report
from fsm.render.diagram import compare_to_dot, flow_to_dot, format_for, path_to_dot, write_diagram
from fsm.replay import Verdict, replay_instance


def register(subparsers: Any) -> None:
    """Add the diagram and audit commands."""
    diagram = subparsers.add_parser(
        "diagram",
        help="draw a flow, a flow against an older version of it, or one payment's real path",
    )
    diagram.add_argument("flow", nargs="?", choices=sorted(catalog()), help="a flow")
    diagram.add_argument("--payment", metavar="ID", help="draw this payment's path from the log")
    diagram.add_argument(
        "--against", metavar="OLD.json", help="mark what changed since this `export` of FLOW"
    )
    diagram.add_argument(
        "--from", dest="from_version", type=int, metavar="N", help="mark what changed since v N"
    )
    diagram.add_argument(
        "--to", dest="to_version", type=int, metavar="M", help="the version drawn (default: newest)"
    )
    diagram.add_argument("--db", default=default_db(), help="database URL (default: %(default)s)")
    diagram.add_argument(
        "-o", "--output", metavar="PATH", help=".dot, .svg or .png (default: DOT on stdout)"
    )
    diagram.set_defaults(handler=_diagram)

    audit = subparsers.add_parser(
        "audit",
        help="write one payment's self-contained HTML audit report (exit 1: diverged or tampered)",
    )
    audit.add_argument("id", help="instance id")
    audit.add_argument("-o", "--output", metavar="PATH", required=True, help="the .html to write")
    audit.add_argument("--db", default=default_db(), help="database URL (default: %(default)s)")
    audit.add_argument("--json", action="store_true", help="print the verdict as JSON")
    audit.set_defaults(handler=_audit)


def _diagram(args: argparse.Namespace) -> int:
    problem = _usage_problem(args)
    if problem:
        sys.stderr.write(f"ewallet-fsm diagram: error: {problem}\n")
        return 2
    if args.output:
        format_for(args.output)  # refuse an unknown suffix before any work
    dot = _payment_dot(args.payment, args.db) if args.payment else _flow_dot(args)
    if args.output is None:
        sys.stdout.write(dot)
        return 0
    write(f"wrote {write_diagram(dot, args.output)}")
    return 0


def _usage_problem(args: argparse.Namespace) -> str | None:
    if (args.flow is None) == (args.payment is None):
        return "give either FLOW or --payment ID"
    if args.against and args.flow is None:
        return "--against needs FLOW"
    if (args.from_version is not None or args.to_version is not None) and args.flow is None:
        return "--from and --to need FLOW"
    if args.against and args.from_version is not None:
        return "give --against or --from, not both"
    return None


def _flow_dot(args: argparse.Namespace) -> str:
    lineage = catalog().lineage(args.flow)
    flow = lineage.latest if args.to_version is None else lineage.version(args.to_version)
    if args.against:
        return compare_to_dot(
            load_flow_file(args.against, guards=GUARDS, renamed_actors=RENAMED_ACTORS), flow
        )
    if args.from_version is not None:
        return compare_to_dot(lineage.version(args.from_version), flow)
    return flow_to_dot(flow)


def _payment_dot(instance_id: str, url: str) -> str:
    with open_existing(url) as store:
        instance = store.get(instance_id)
        history, refused = store.history(instance_id), store.rejections(instance_id)
    return path_to_dot(catalog().lineage(instance.flow), instance, history, refused)


def _audit(args: argparse.Namespace) -> int:
    with open_existing(args.db) as store:
        instance = store.get(args.id)
        history, refused = store.history(args.id), store.rejections(args.id)
        chain = verify_chains(store, [args.id])[args.id]
    flow = catalog().lineage(instance.flow)
    result = replay_instance(flow, instance, history, chain=chain)
    html = audit_report(flow, instance, history, refused, result, generated_at=datetime.now(UTC))
    target = Path(args.output)
    target.write_text(html, encoding="utf-8")
    if args.json:
        divergence = result.divergence
        write_json(
            {
                "instance": instance.id,
                "report": str(target),
                "verdict": str(result.verdict),
                "state": result.state,
                "versions": list(result.versions),
                "steps": len(history),
                "refused": len(refused),
                "divergence": None if divergence is None else divergence.reason,
                "damaged": list(result.damaged),
                "chain": chain_json(chain),
            }
        )
    else:
        write(
            f"wrote {target}: replay {result.verdict}, {len(history)} steps, {len(refused)} refused"
        )
        write(f"audit chain {chain.describe()}")
        if result.divergence is not None:
            write(f"first divergence: {result.divergence.reason}")
        for note in result.damaged:
            write(f"damaged row at {note}")
    return 0 if result.verdict is Verdict.CONSISTENT else 1
