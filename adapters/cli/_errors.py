"""What the command says when it cannot do its job: one line, never a traceback.

A refused request, a bad argument, a missing database driver, an unreachable or damaged
database, a taken port or an unwritable file is the user's to fix, so it gets one line naming
what went wrong; anything else is a bug in the command and keeps its traceback.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import IO

from sqlalchemy import exc, make_url

from adapters.cli._extras import MissingExtra
from fsm.errors import ConfigurationError, FsmError, StorageError

_OWN_PACKAGES = ("fsm", "adapters")
_URL_FORMS = "sqlite:///PATH or postgresql://USER@HOST/DB"
_DRIVER_HINT = "for PostgreSQL install psycopg: pip install 'ewallet-fsm[postgres]'"


def check_can_listen(host: str, port: int) -> None:
    """Refuse, before any other work, an address this process cannot listen on.

    Raises:
        ConfigurationError: the port is taken, not ours to use, or the host is not local.
    """
    if port == 0:  # any free port: nothing to check
        return
    try:
        socket.create_server((host, port)).close()
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise ConfigurationError(f"cannot listen on {host}:{port}: {reason}") from None


def one_line(error: BaseException, db_url: str | None) -> str | None:
    """The line that reports ``error``, or ``None`` when it is a bug to show in full.

    Args:
        error: what stopped the command.
        db_url: the ``--db`` the command was given, if any, to name the database (without its
            password).
    """
    if isinstance(error, StorageError):
        return _database(db_url, error)
    if isinstance(error, FsmError | MissingExtra):
        return _flat(str(error))
    if isinstance(error, ImportError):
        return _missing_module(error, db_url)
    if isinstance(error, exc.NoSuchModuleError):
        return f"no database dialect for {_scheme(db_url)!r}; use {_URL_FORMS}"
    if isinstance(error, exc.ArgumentError):
        return f"--db is not a database URL ({_flat(str(error))}); use {_URL_FORMS}"
    if isinstance(error, OSError):
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror or _flat(str(error))}{where}"
    return None


def report(error: BaseException, db_url: str | None, stream: IO[str] | None = None) -> bool:
    """Write ``error``'s line to standard error; false when it is a bug (nothing written)."""
    line = one_line(error, db_url)
    if line is None:
        return False
    (stream or sys.stderr).write(f"ewallet-fsm: error: {line}\n")
    return True


def _missing_module(error: ImportError, db_url: str | None) -> str | None:
    name = error.name or ""
    if not name or name.split(".")[0] in _OWN_PACKAGES:
        return None
    if db_url is not None and not _scheme(db_url).startswith("sqlite"):
        return (
            f"the database driver for {_scheme(db_url)!r} is not installed "
            f"(no module {name!r}); {_DRIVER_HINT}"
        )
    return f"the module {name!r} is not installed"


def _database(db_url: str | None, error: BaseException) -> str:
    return f"database {_safe(db_url)}: {_flat(str(error))}"


def _scheme(db_url: str | None) -> str:
    return (db_url or "").split("://", 1)[0]


def _safe(db_url: str | None) -> str:
    """The URL without its password."""
    if db_url is None:
        return "(none given)"
    try:
        return make_url(db_url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return _scheme(db_url) + "://..."


def _flat(text: str) -> str:
    """The text on one line, without SQLAlchemy's footnotes (the statement, its parameters)."""
    lines = [line.strip() for line in text.splitlines()]
    kept = [line for line in lines if line and not line.startswith(_FOOTNOTES)]
    return " ".join(kept) or repr(text)


_FOOTNOTES = ("(Background on this error", "[SQL:", "[parameters:")


__all__ = ["check_can_listen", "one_line", "report"]
