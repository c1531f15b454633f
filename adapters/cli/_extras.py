"""Commands that need an optional part of the package import it when they run, and name it if not.

``serve`` needs the ``server`` extra (uvicorn); ``simulator`` and ``demo`` need the ``simulator``
extra (the simulator, served by uvicorn). Every other command runs on the core install, so the
command's own import path never touches them.
"""

from __future__ import annotations

import importlib


class MissingExtra(Exception):
    """A command needs an extra that is not installed; the message says how to install it."""

    def __init__(self, command: str, extra: str, module: str) -> None:
        self.command, self.extra, self.module = command, extra, module
        super().__init__(
            f"`{command}` needs the {extra} extra (no module {module!r}): "
            f"pip install 'ewallet-fsm[{extra}]'"
        )


def require_extra(command: str, extra: str, *modules: str) -> None:
    """Import ``modules``, which ``command`` needs from ``extra``, before it does anything.

    Raises:
        MissingExtra: one of them (or a package holding it) is not installed.
        ImportError: something else failed to import; not the user's to fix, shown in full.
    """
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as error:
            if not _names_part_of(error.name, name):
                raise
            raise MissingExtra(command, extra, error.name or name) from None


def _names_part_of(missing: str | None, wanted: str) -> bool:
    """Whether ``missing`` is ``wanted`` itself or one of the packages holding it."""
    if not missing:
        return False
    return wanted == missing or wanted.startswith(missing + ".")


__all__ = ["MissingExtra", "require_extra"]
