"""The error tree: drawn once in ``fsm.errors``, exported from ``fsm``, no private class in it."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import fsm
import fsm._signals
import fsm.errors
from fsm import ConcurrentTransition, FsmError

FSM_DIR = Path(fsm.__file__).resolve().parent
_DRAWN = re.compile(r"^(?P<indent>[ │]*)(?:[├└]── )?(?P<name>[A-Z]\w+)\s")


def drawn_tree() -> dict[str, str | None]:
    """Each class the docstring draws, with the class it is drawn under (``None``: the root)."""
    lines = str(fsm.errors.__doc__).split("::", 1)[1].strip("\n").splitlines()
    parents: dict[str, str | None] = {}
    stack: list[str] = []
    for line in lines:
        match = _DRAWN.match(line.removeprefix("    "))
        assert match, line
        depth = len(match.group("indent")) // 4 + (1 if "──" in line else 0)
        del stack[depth:]
        parents[match.group("name")] = stack[-1] if stack else None
        stack.append(match.group("name"))
    return parents


def error_classes() -> dict[str, type[BaseException]]:
    return {
        name: value
        for name, value in vars(fsm.errors).items()
        if inspect.isclass(value)
        and issubclass(value, FsmError)
        and value.__module__ == fsm.errors.__name__
    }


def test_the_docstring_draws_every_class_under_its_parent() -> None:
    drawn, classes = drawn_tree(), error_classes()
    assert set(drawn) == set(classes)
    for name, parent in drawn.items():
        bases = [base.__name__ for base in classes[name].__bases__ if issubclass(base, FsmError)]
        assert bases == ([] if parent is None else [parent]), name


def raised_names(source: str) -> set[str]:
    """Names ``source`` raises or builds (an error may be built, returned, then raised)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        target = None
        if isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        elif isinstance(node, ast.Call):
            target = node.func
        if isinstance(target, ast.Attribute):
            target = target.value
        if isinstance(target, ast.Name):
            names.add(target.id)
    return names


def test_the_raise_scanner_sees_every_form() -> None:
    source = "raise A('x')\nraise B\nraise C.from_error(e) from None\nraise\nerror = D(1)\n"
    assert raised_names(source) == {"A", "B", "C", "D"}


def test_fsm_exports_every_error_it_raises_and_their_bases() -> None:
    classes = error_classes()
    raised = set().union(
        *(
            raised_names(path.read_text(encoding="utf-8"))
            for path in FSM_DIR.rglob("*.py")
            if path.name != "errors.py"
        )
    )
    wanted = {
        base.__name__
        for name in raised & set(classes)
        for base in classes[name].__mro__
        if base.__name__ in classes
    }
    assert {"FsmError", "TransitionError", "TransitionNotAllowed"} <= wanted
    assert sorted(wanted - set(fsm.__all__)) == []


def test_internal_signals_derive_from_nothing_public() -> None:
    signals = [
        value
        for value in vars(fsm._signals).values()
        if inspect.isclass(value) and value.__module__ == fsm._signals.__name__
    ]
    assert len(signals) == 4
    for signal in signals:
        assert signal.__bases__ == (Exception,), signal


def test_a_lock_the_database_gave_up_on_names_no_placeholder() -> None:
    error = ConcurrentTransition("pay-1", None, "confirm_payment", None)
    assert (error.state, error.expected_version) == (None, None)
    assert str(error) == "'pay-1' moved while 'confirm_payment' was applied"
    loaded = ConcurrentTransition("pay-1", "paid", "confirm_payment", 3)
    assert str(loaded) == "'pay-1' moved past version 3 while 'confirm_payment' was applied"
