"""What the distribution promises: a core install without the tools, extras that name themselves,
a version the command reports, and the licence the metadata declares.

The simulator and uvicorn are extras (``ewallet-fsm[simulator]``, ``[server]``): importing the
library or its command never loads them, and a command that needs one, run where it is missing
(blocked here by an import hook in a fresh interpreter), says in one line which extra to install.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from adapters.cli import DISTRIBUTION, installed_version
from tests.cli_run import Ran, ewallet_fsm

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
TOOLS = ("adapters.simulator", "uvicorn")

_BLOCKING_MAIN = """
import sys
from importlib.abc import MetaPathFinder

BLOCKED = {blocked!r}

class Missing(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Missing())
from adapters.cli import main
sys.exit(main({argv!r}))
"""


def run_python(source: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``source`` in a fresh interpreter on this tree."""
    return subprocess.run(  # noqa: S603 - this interpreter, code from the tests
        [sys.executable, "-c", source],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=120,
        check=False,
    )


def run_without(blocked: tuple[str, ...], argv: list[str], cwd: Path) -> Ran:
    """The command's ``main(argv)`` in a fresh interpreter where ``blocked`` cannot be imported."""
    done = run_python(_BLOCKING_MAIN.format(blocked=blocked, argv=argv), cwd)
    return Ran(tuple(argv), done.returncode, done.stdout, done.stderr)


# --- the core install ---------------------------------------------------------------------------


def test_the_library_and_its_command_import_without_the_tools(tmp_path: Path) -> None:
    source = (
        "import json, sys\n"
        "import adapters, adapters.service, adapters.cli, fsm\n"
        "adapters.cli.build_parser()\n"
        f"print(json.dumps([m for m in {TOOLS!r} if m in sys.modules]))\n"
    )
    done = run_python(source, tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def runtime_modules() -> list[str]:
    """Every module of ``fsm`` and ``adapters`` but the simulator's, by dotted name."""
    names = []
    for package in ("fsm", "adapters"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join(parts)
            if not name.startswith("adapters.simulator") and "migrations" not in parts:
                names.append(name)
    return names


def test_no_module_outside_the_simulator_loads_the_tools(tmp_path: Path) -> None:
    names = runtime_modules()
    source = (
        "import importlib, json, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps([m for m in {TOOLS!r} if m in sys.modules]))\n"
    )
    done = run_python(source, tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(names) > 50
    assert json.loads(done.stdout) == []


def test_uvicorn_is_an_extra_not_a_core_dependency() -> None:
    project = PYPROJECT["project"]
    assert not [d for d in project["dependencies"] if d.startswith("uvicorn")]
    extras = project["optional-dependencies"]
    for extra in ("server", "simulator"):
        assert [d for d in extras[extra] if d.startswith("uvicorn")], extra


def test_the_setup_script_installs_every_extra() -> None:
    setup = (ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")
    (line,) = [line for line in setup.splitlines() if "pip install" in line and "-e" in line]
    extras = line.split("[", 1)[1].split("]", 1)[0].split(",")
    assert set(extras) == set(PYPROJECT["project"]["optional-dependencies"])


# --- a command whose extra is missing ---------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "blocked", "extra", "module"),
    [
        (["serve", "--port", "0", "--db"], ("uvicorn",), "server", "uvicorn"),
        (["simulator", "--port", "0"], ("uvicorn",), "simulator", "uvicorn"),
        (["simulator"], ("adapters.simulator",), "simulator", "adapters.simulator"),
        (["demo", "--db"], ("uvicorn",), "simulator", "uvicorn"),
        (["demo", "--db"], ("adapters.simulator",), "simulator", "adapters.simulator"),
    ],
)
def test_a_command_without_its_extra_names_the_extra_in_one_line(
    tmp_path: Path, argv: list[str], blocked: tuple[str, ...], extra: str, module: str
) -> None:
    database = tmp_path / "x.sqlite3"
    if argv[-1] == "--db":
        argv = [*argv, f"sqlite:///{database}"]
    ran = run_without(blocked, argv, tmp_path)
    line = ran.assert_one_line_error()
    assert ran.code == 2
    assert line == (
        f"ewallet-fsm: error: `{argv[0]}` needs the {extra} extra (no module {module!r}): "
        f"pip install 'ewallet-fsm[{extra}]'"
    )
    assert not database.exists()  # refused before anything was opened


def test_commands_without_an_extra_run_where_the_tools_are_missing(tmp_path: Path) -> None:
    ran = run_without(TOOLS, ["check", "--json"], tmp_path)
    assert ran.code == 0, ran.err
    assert "ewallet_payment" in ran.out


# --- version and licence ----------------------------------------------------------------------


def test_version_prints_the_installed_distribution_version(tmp_path: Path) -> None:
    ran = ewallet_fsm("--version", cwd=tmp_path)
    assert (ran.code, ran.err) == (0, "")
    assert ran.out == f"ewallet-fsm {metadata.version(DISTRIBUTION)}\n"
    assert installed_version() == metadata.version(DISTRIBUTION) == PYPROJECT["project"]["version"]


def test_the_declared_licence_is_the_shipped_one() -> None:
    project = PYPROJECT["project"]
    assert (project["license"], project["license-files"]) == ("MIT", ["LICENSE"])
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n\nCopyright (c) 2026 The ewallet-fsm authors\n")
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text
