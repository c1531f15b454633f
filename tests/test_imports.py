"""The import graph, checked: no cycle inside ``fsm`` or ``adapters``, and the adapters in layers.

The graph is read from the source (every import counts: at module level, inside a function, and
under ``TYPE_CHECKING``, since a cycle there is still two modules that need each other).
``from package import name`` depends on the package's ``__init__``, whose namespace it reads
first, and also on the submodule ``name`` when there is one: a module that takes a sibling through
its own package's ``__init__`` closes a cycle with an ``__init__`` that re-exports from it. A
parent package is imported first by every import of its children, so that alone is no edge.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("fsm", "adapters")

Graph = Mapping[str, frozenset[str]]

LAYERS: tuple[tuple[str, ...], ...] = (
    ("adapters.errors", "adapters.telemetry"),
    ("adapters.nicepay", "adapters.events"),
    ("adapters.wallets",),
    ("adapters.reconcile",),
    ("adapters.inbound", "adapters.refunds", "adapters.confirmations"),
    ("adapters.service",),
    ("adapters", "adapters.cli", "adapters.simulator.demo", "adapters.simulator.rig"),
)
"""The adapters' layers, lowest first: a module imports only from its own package or a lower
layer. ``adapters`` is the package's ``__init__`` alone (its public API); it, the demo and its
rig compose the layers, like the command."""
TOOLS = {"adapters.simulator": ("adapters.nicepay",)}
"""Tools beside the layers, the only adapters packages each may import from; only the top layer
may import a tool."""
NO_ENGINE = ("adapters.nicepay", "adapters.wallets")
"""Packages that never meet the engine, its store or the service."""
ENGINE = ("fsm.engine", "fsm.store", "adapters.service")


def module_files(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Every module of ``packages`` under ``root``, by dotted name (a package by its own)."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def import_graph(root: Path, packages: Iterable[str]) -> Graph:
    """Each module of ``packages`` and the modules of ``packages`` it imports."""
    files = module_files(root, packages)
    return {name: frozenset(_imported(name, path, files) - {name}) for name, path in files.items()}


def _imported(name: str, path: Path, known: Mapping[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)
    return {target for target in targets if target in known}


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = parts[: len(parts) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = stack[stack.index(module) :]
            del stack[stack.index(module) :]
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(found)


def owner(module: str, packages: Iterable[str]) -> str | None:
    """The longest of ``packages`` that is ``module`` or contains it; a top-level package
    (``adapters``) stands for its ``__init__`` alone."""
    matches = [p for p in packages if module == p or ("." in p and module.startswith(p + "."))]
    return max(matches, key=len, default=None)


def layer_violations(graph: Graph, layers: tuple[tuple[str, ...], ...]) -> list[str]:
    """Imports that reach into another package of the same or a higher layer, or into a tool
    from below the top layer."""
    rank = {package: level for level, row in enumerate(layers) for package in row}
    rank.update(dict.fromkeys(TOOLS, len(layers) - 1))
    problems = []
    for module, targets in sorted(graph.items()):
        home = owner(module, rank)
        for target in sorted(targets):
            there = owner(target, rank)
            if home is None or there is None or there == home:
                continue
            composes = rank[home] == len(layers) - 1  # the top layer may use its neighbours
            if rank[there] > rank[home] or (rank[there] == rank[home] and not composes):
                problems.append(f"{module} imports {target}")
    return problems


def _write(root: Path, files: Mapping[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def graph() -> Graph:
    built = import_graph(ROOT, PACKAGES)
    assert len(built) >= 60, "the scan found too few modules to mean anything"
    return built


def test_the_detector_finds_a_planted_cycle(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg.b import thing\n",
            "pkg/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.c\n",
            "pkg/c.py": "def late():\n    from . import a\n",
            "pkg/d.py": "from pkg import a\n",
        },
    )
    graph = import_graph(tmp_path, ["pkg"])
    assert graph["pkg.d"] == {"pkg", "pkg.a"}  # the submodule, and the __init__ it is read from
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]


def test_importing_a_name_from_a_package_depends_on_its_init(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {"pkg/__init__.py": "from pkg.a import x\n", "pkg/a.py": "from pkg import y\n"},
    )
    assert cycles(import_graph(tmp_path, ["pkg"])) == [["pkg", "pkg.a"]]


def test_a_submodule_taken_through_a_reexporting_init_closes_a_cycle(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import x\n",
            "pkg/a.py": "from pkg.b import helper\n",
            "pkg/b.py": "from pkg import c\n",
            "pkg/c.py": "",
            "pkg/d.py": "from pkg.c import thing\n",  # by module: no edge to the __init__
        },
    )
    graph = import_graph(tmp_path, ["pkg"])
    assert graph["pkg.d"] == {"pkg.c"}
    assert cycles(graph) == [["pkg", "pkg.a", "pkg.b"]]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle(graph: Graph, package: str) -> None:
    def inside(module: str) -> bool:
        return module.split(".")[0] == package

    within = {m: frozenset(filter(inside, targets)) for m, targets in graph.items() if inside(m)}
    assert cycles(within) == []


def test_the_layer_check_finds_upward_imports() -> None:
    graph = {
        "adapters.wallets.base": frozenset({"adapters.service", "adapters.nicepay.client"}),
        "adapters.service": frozenset({"adapters.wallets.base", "adapters.simulator"}),
        "adapters.nicepay.client": frozenset({"adapters"}),
        "adapters": frozenset({"adapters.service"}),
    }
    assert layer_violations(graph, LAYERS) == [
        "adapters.nicepay.client imports adapters",
        "adapters.service imports adapters.simulator",
        "adapters.wallets.base imports adapters.service",
    ]


def test_adapters_import_only_lower_layers(graph: Graph) -> None:
    placed = [*(p for row in LAYERS for p in row), *TOOLS]
    unplaced = [m for m in graph if m.split(".")[0] == "adapters" and owner(m, placed) is None]
    assert unplaced == [], "place every adapters package in a layer or among the tools"
    assert layer_violations(graph, LAYERS) == []


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_tools_import_only_the_wire(graph: Graph, tool: str) -> None:
    layered = [p for row in LAYERS for p in row]
    found = [
        f"{module} imports {target}"
        for module, targets in sorted(graph.items())
        if owner(module, [tool, *layered]) == tool
        for target in sorted(targets)
        if target.startswith("adapters") and not owner(target, [tool, *TOOLS[tool]])
    ]
    assert found == []


@pytest.mark.parametrize("package", NO_ENGINE)
def test_the_wire_and_the_wallets_never_meet_the_engine(graph: Graph, package: str) -> None:
    found = [
        f"{module} imports {target}"
        for module, targets in sorted(graph.items())
        if owner(module, [package])
        for target in sorted(targets)
        if owner(target, ENGINE)
    ]
    assert found == []
