"""The architecture, checked: what ``fsm`` may import, what it exports, and how it logs."""

from __future__ import annotations

import ast
import inspect
import json
import logging
import re
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

import adapters
import fsm
import fsm.definition
import fsm.flows
import fsm.store

ROOT = Path(__file__).resolve().parents[1]
FSM_DIR = ROOT / "fsm"
ADAPTERS_DIR = ROOT / "adapters"
FORBIDDEN_IN_FSM = frozenset({"adapters", "httpx"})
MACHINE_MODULE = FSM_DIR / "definition" / "table.py"


def modules_under(directory: Path) -> list[Path]:
    return sorted(path for path in directory.rglob("*.py") if "__pycache__" not in path.parts)


def imported_roots(source: str) -> Iterator[tuple[int, str]]:
    """``(line, top-level package)`` of every import in ``source``, dynamic ones included."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                yield node.lineno, node.module.split(".")[0]
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func) and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield node.lineno, first.value.split(".")[0]


def _is_dynamic_import(func: ast.expr) -> bool:
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return name in {"import_module", "__import__"}


def violations(paths: list[Path], forbidden: frozenset[str]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{line} imports {root}"
        for path in paths
        for line, root in imported_roots(path.read_text(encoding="utf-8"))
        if root in forbidden
    ]


def test_the_import_scanner_sees_every_kind_of_import() -> None:
    source = (
        "import httpx\n"
        "import adapters.cli as cli\n"
        "from adapters.wallets import registry\n"
        "from transitions.core import Machine\n"
        "from . import sibling\n"
        "importlib.import_module('httpx._client')\n"
        "__import__('adapters')\n"
    )
    assert list(imported_roots(source)) == [
        (1, "httpx"),
        (2, "adapters"),
        (3, "adapters"),
        (4, "transitions"),
        (6, "httpx"),
        (7, "adapters"),
    ]


def test_fsm_modules_never_import_adapters_or_httpx() -> None:
    paths = modules_under(FSM_DIR)
    assert len(paths) >= 15, "the scan found too few modules to mean anything"
    assert violations(paths, FORBIDDEN_IN_FSM) == []


def test_importing_fsm_loads_neither_adapters_nor_httpx() -> None:
    program = (
        "import importlib, json, pkgutil, sys\n"
        "import fsm\n"
        "for module in pkgutil.walk_packages(fsm.__path__, 'fsm.'):\n"
        "    importlib.import_module(module.name)\n"
        "loaded = sorted(name for name in sys.modules if name.split('.')[0] in "
        f"{sorted(FORBIDDEN_IN_FSM)!r})\n"
        "print(json.dumps({'fsm': len([n for n in sys.modules if n.startswith('fsm.')]), "
        "'forbidden': loaded}))\n"
    )
    result = subprocess.run(  # noqa: S603 - this interpreter, a fixed program
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["fsm"] >= 15
    assert report["forbidden"] == []


def test_only_the_machine_module_imports_transitions() -> None:
    paths = modules_under(FSM_DIR) + modules_under(ADAPTERS_DIR)
    found = violations(paths, frozenset({"transitions"}))
    assert found, "fsm/definition/table.py is expected to import transitions"
    assert {line.split(":")[0] for line in found} == {str(MACHINE_MODULE.relative_to(ROOT))}


def export_order(name: str) -> tuple[int, list[str | int]]:
    """The order ruff's RUF022 keeps ``__all__`` in: CONSTANTS, then Classes, then functions."""
    group = 0 if name.isupper() else 1 if name[0].isupper() else 2
    natural = [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
    return group, natural


def test_export_order_puts_constants_then_classes_then_functions() -> None:
    names = ["replay", "Engine", "FLOWS", "Actor", "DEFAULT_RETRY", "get_flow", "Step10", "Step2"]
    assert sorted(names, key=export_order) == [
        "DEFAULT_RETRY",
        "FLOWS",
        "Actor",
        "Engine",
        "Step2",
        "Step10",
        "get_flow",
        "replay",
    ]


@pytest.mark.parametrize(
    "package",
    [fsm, fsm.definition, fsm.flows, fsm.store, adapters],
    ids=["fsm", "fsm.definition", "fsm.flows", "fsm.store", "adapters"],
)
def test_all_is_sorted_and_every_name_resolves(package: types.ModuleType) -> None:
    names = list(package.__all__)
    assert names == sorted(names, key=export_order)
    assert len(names) == len(set(names))
    missing = [name for name in names if not hasattr(package, name)]
    assert missing == []


def _public(package: types.ModuleType) -> set[str]:
    """Names a caller could use: no underscore, no module, no ``from __future__`` flag."""
    return {
        name
        for name, value in vars(package).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and type(value).__module__ != "__future__"
    }


@pytest.mark.parametrize(
    "package", [fsm, fsm.definition, adapters], ids=["fsm", "fsm.definition", "adapters"]
)
def test_every_public_name_is_exported(package: types.ModuleType) -> None:
    assert sorted(_public(package) - set(package.__all__)) == []


def test_flows_export_every_name_they_define() -> None:
    """Classes and functions count when a flows module defines them; data counts always."""

    def defined_here(value: object) -> bool:
        if inspect.isclass(value) or inspect.isfunction(value):
            return str(getattr(value, "__module__", "")).startswith("fsm.flows")
        return True

    public = {name for name in _public(fsm.flows) if defined_here(getattr(fsm.flows, name))}
    assert sorted(public - set(fsm.flows.__all__)) == []


@pytest.mark.parametrize("package", ["fsm", "adapters"])
def test_the_library_only_installs_a_null_handler(package: str) -> None:
    handlers = logging.getLogger(package).handlers
    assert len(handlers) == 1
    assert type(handlers[0]) is logging.NullHandler


@pytest.mark.parametrize(
    ("package", "imports"),
    [("fsm", "fsm, fsm.engine, fsm.flows"), ("adapters", "adapters, adapters.service")],
)
def test_a_fresh_import_installs_exactly_one_null_handler(package: str, imports: str) -> None:
    program = (
        f"import logging, {imports}\n"
        f"print([type(h).__name__ for h in logging.getLogger({package!r}).handlers])\n"
        "print([type(h).__name__ for h in logging.getLogger().handlers])\n"
    )
    result = subprocess.run(  # noqa: S603 - this interpreter, a fixed program
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["['NullHandler']", "[]"]


def _logging_calls(source: str, names: set[str]) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in names:
                lines.append(node.lineno)
    return lines


def test_no_fsm_module_configures_logging() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in modules_under(FSM_DIR)
        for line in _logging_calls(path.read_text(encoding="utf-8"), {"basicConfig", "dictConfig"})
    ]
    assert found == []
    assert _logging_calls("import logging\nlogging.basicConfig()\n", {"basicConfig"}) == [2]


@pytest.mark.parametrize("directory", [FSM_DIR, ADAPTERS_DIR], ids=["fsm", "adapters"])
def test_only_the_package_init_adds_a_handler(directory: Path) -> None:
    found = {
        str(path.relative_to(ROOT))
        for path in modules_under(directory)
        if _logging_calls(path.read_text(encoding="utf-8"), {"addHandler"})
    }
    assert found == {f"{directory.name}/__init__.py"}


def test_only_the_command_configures_logging_in_the_adapters() -> None:
    found = {
        str(path.relative_to(ROOT))
        for path in modules_under(ADAPTERS_DIR)
        if _logging_calls(path.read_text(encoding="utf-8"), {"basicConfig", "dictConfig"})
    }
    assert found <= {"adapters/cli/__init__.py"}


def engine_store_uses(source: str) -> list[int]:
    """Lines that reach the store behind an engine: ``engine.store``, ``x.engine.store``,
    ``getattr(engine, "store")``."""
    return sorted(
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute | ast.Call)
        and _reads_attribute(node, "store")
        and _is_engine(_owner(node))
    )


def _reads_attribute(node: ast.Attribute | ast.Call, name: str) -> bool:
    if isinstance(node, ast.Attribute):
        return node.attr == name
    return (
        isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "getattr"
        and len(node.args) >= 2
        and isinstance(node.args[1], ast.Constant)
        and node.args[1].value == name
    )


def _owner(node: ast.Attribute | ast.Call) -> ast.expr:
    return node.value if isinstance(node, ast.Attribute) else node.args[0]


def _is_engine(node: ast.expr) -> bool:
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
    return name in {"engine", "_engine"}


def test_the_engine_store_scanner_sees_every_way_in() -> None:
    source = (
        "engine.store.find()\n"
        "self.service.engine.store\n"
        "self._engine.store.get('x')\n"
        "getattr(service.engine, 'store')\n"
        "self.store.due(now)\n"
        "engine.find(tx_id='x')\n"
    )
    assert engine_store_uses(source) == [1, 2, 3, 4]


def test_no_adapter_reaches_the_store_behind_an_engine() -> None:
    """Adapters read and move instances through the engine, and are handed the journals and
    leases they keep; none opens its own transactions on the engine's store."""
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in modules_under(ADAPTERS_DIR)
        for line in engine_store_uses(path.read_text(encoding="utf-8"))
    ]
    assert len(modules_under(ADAPTERS_DIR)) >= 20, "the scan found too few modules to mean anything"
    assert found == []


def test_the_checkpoint_reseal_telemetry_and_settlement_api_is_public() -> None:
    from adapters.errors import CallKeyTaken, RefundNotSettleable
    from adapters.reconcile.work import CheckRequest
    from adapters.refunds.settle import settle_by_hand
    from adapters.telemetry import ServiceTelemetry
    from fsm.chain import checkpoint
    from fsm.store.reseal import reseal
    from fsm.telemetry import EngineTelemetry

    assert (fsm.Checkpoint, fsm.take_checkpoint, fsm.load_checkpoint) == (
        checkpoint.Checkpoint,
        checkpoint.take,
        checkpoint.load,
    )
    assert fsm.verify_against_checkpoint is checkpoint.verify_against
    assert (fsm.reseal, fsm.EngineTelemetry) == (reseal, EngineTelemetry)
    assert (adapters.CheckRequest, adapters.ServiceTelemetry) == (CheckRequest, ServiceTelemetry)
    assert (adapters.CallKeyTaken, adapters.RefundNotSettleable) == (
        CallKeyTaken,
        RefundNotSettleable,
    )
    assert adapters.settle_by_hand is settle_by_hand
