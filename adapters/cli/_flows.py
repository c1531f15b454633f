"""``ewallet-fsm check`` and ``ewallet-fsm export``: the flow definitions themselves."""

from __future__ import annotations

import argparse
from typing import Any

from adapters.cli._output import table, write, write_json
from fsm.definition import FlowDefinition, dump_flow, load_flow_file
from fsm.errors import FlowDefinitionError
from fsm.flows import FLOWS, GUARDS, get_flow


def register(subparsers: Any) -> None:
    """Add the flow commands."""
    check = subparsers.add_parser(
        "check", help="validate every built-in flow, and any flow files given, and list them"
    )
    check.add_argument("files", nargs="*", help="flow definitions as JSON (see `export`)")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.set_defaults(handler=_check)

    export = subparsers.add_parser("export", help="print a built-in flow as JSON")
    export.add_argument("flow", choices=sorted(FLOWS))
    export.set_defaults(handler=_export)


def _check(args: argparse.Namespace) -> int:
    results = [_summary(flow) for flow in FLOWS.values()]
    for path in args.files:
        try:
            results.append(_summary(load_flow_file(path, guards=GUARDS), source=path))
        except FlowDefinitionError as exc:
            results.append(
                {"flow": exc.flow, "source": path, "valid": False, "problems": list(exc.problems)}
            )
    if args.json:
        write_json({"valid": all(r["valid"] for r in results), "flows": results})
    else:
        _print_check(results)
    return 0 if all(result["valid"] for result in results) else 1


def _summary(flow: FlowDefinition, source: str = "built-in") -> dict[str, Any]:
    return {
        "flow": flow.name,
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
            "valid" if r["valid"] else "INVALID",
            r.get("states", ""),
            r.get("transitions", ""),
            r.get("fingerprint", ""),
            r["source"],
        )
        for r in results
    ]
    write(table(("flow", "verdict", "states", "transitions", "fingerprint", "source"), rows))
    for result in results:
        for problem in result["problems"]:
            write(f"{result['flow']}: {problem}")


def _export(args: argparse.Namespace) -> int:
    write(dump_flow(get_flow(args.flow)).rstrip("\n"))
    return 0
