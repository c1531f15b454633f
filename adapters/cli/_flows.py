"""``ewallet-fsm check`` and ``ewallet-fsm export``: the flow definitions themselves.

``check`` validates every released version of every flow and holds them to the release lock: a
released version whose content changed without a new version number fails the check.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from adapters.cli._catalog import catalog
from adapters.cli._output import table, write, write_json
from fsm.definition import FlowDefinition, dump_flow, load_flow_file
from fsm.definition.release import LockReport, check_lock, read_lock
from fsm.errors import FlowDefinitionError
from fsm.flows import GUARDS, RELEASE_LOCK, RENAMED_ACTORS


def register(subparsers: Any) -> None:
    """Add the flow commands."""
    check = subparsers.add_parser(
        "check", help="validate every built-in flow, and any flow files given, and list them"
    )
    check.add_argument("files", nargs="*", help="flow definitions as JSON (see `export`)")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.add_argument(
        "--lock",
        type=Path,
        default=RELEASE_LOCK,
        metavar="FILE",
        help="the released fingerprints to hold the flows to (default: the built-in flows' lock)",
    )
    check.set_defaults(handler=_check)

    export = subparsers.add_parser("export", help="print a flow version as JSON")
    export.add_argument("flow", choices=sorted(catalog()))
    export.add_argument(
        "--version", dest="flow_version", type=int, metavar="N", help="default: the newest"
    )
    export.set_defaults(handler=_export)


def _check(args: argparse.Namespace) -> int:
    flows = catalog()
    results = [_summary(flow) for flow in flows.released()]
    lock = check_lock(flows, read_lock(args.lock))
    for path in args.files:
        try:
            flow = load_flow_file(path, guards=GUARDS, renamed_actors=RENAMED_ACTORS)
            results.append(_summary(flow, source=path))
        except FlowDefinitionError as exc:
            results.append(
                {"flow": exc.flow, "source": path, "valid": False, "problems": list(exc.problems)}
            )
    valid = all(result["valid"] for result in results) and lock.holds
    if args.json:
        write_json({"valid": valid, "flows": results, "lock": _lock_json(lock, args.lock)})
    else:
        _print_check(results)
        _print_lock(lock, args.lock)
    return 0 if valid else 1


def _lock_json(lock: LockReport, path: Path) -> dict[str, Any]:
    return {
        "file": str(path),
        "holds": lock.holds,
        "changed": list(lock.changed),
        "unreleased": list(lock.unreleased),
    }


def _print_lock(lock: LockReport, path: Path) -> None:
    for line in lock.changed:
        write(f"release lock: {line}")
    for line in lock.unreleased:
        write(f"release lock: {line}, not released yet (scripts/release_flows.py)")
    if lock.holds:
        write(f"release lock {path.name}: every released version unchanged")


def _summary(flow: FlowDefinition, source: str = "built-in") -> dict[str, Any]:
    return {
        "flow": flow.name,
        "version": flow.version,
        "source": source,
        "valid": True,
        "states": len(flow.states),
        "final_states": sum(1 for state in flow.states if state.final),
        "transitions": len(flow.transitions),
        "events": len(flow.events),
        "fingerprint": flow.fingerprint,
        "problems": [],
    }


def _print_check(results: list[dict[str, Any]]) -> None:
    rows = [
        (
            r["flow"],
            f"v{r['version']}" if "version" in r else "",
            "valid" if r["valid"] else "INVALID",
            r.get("states", ""),
            r.get("transitions", ""),
            r.get("fingerprint", ""),
            r["source"],
        )
        for r in results
    ]
    head = ("flow", "version", "verdict", "states", "transitions", "fingerprint", "source")
    write(table(head, rows))
    for result in results:
        for problem in result["problems"]:
            write(f"{result['flow']}: {problem}")


def _export(args: argparse.Namespace) -> int:
    lineage = catalog().lineage(args.flow)
    flow = lineage.latest if args.flow_version is None else lineage.version(args.flow_version)
    write(dump_flow(flow).rstrip("\n"))
    return 0
