"""How the command logs: text by default, or one JSON object per line (``--log-format json``).

A JSON line carries the record's time, level, logger and message, then every field the code
passed as ``extra`` (flow, payment id, reference, wallet, event, from, to, actor, reason...).
Secrets never reach a line: a field named like a secret is blanked whatever it holds, and every
text is passed through the inbound redaction (token-shaped values, labelled tokens and keys), in
text lines too. A command that holds secrets (the merchant key, the audit keys, the webhook's
secret) hands them to the handlers with :func:`hide_in_logs`, so they are blanked by value
wherever a message carries them, labelled or not.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final

from adapters.inbound.redact import redact
from fsm import REDACTED

TEXT: Final = "text"
JSON: Final = "json"
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_STANDARD: Final = frozenset(
    {*vars(logging.LogRecord("", 0, "", 0, "", None, None)), "message", "asctime", "taskName"}
)
_SECRET_NAME: Final = re.compile(
    r"(?i)(?<!call_)(?<!idempotency_)key$|signature|hmac|secret|token|passw|credential"
    r"|authorization|cookie"
)
"""A field whose name matches is blanked whatever it holds (``merchant_key``, ``audit_key``,
``api_key``, ``signature``, ``webhook_secret``...); the keys that only name a call are not."""


_SHORTEST_SECRET: Final = 8
"""A shorter value is not blanked by value: it would blank ordinary words."""


class _Redacting(logging.Formatter):
    """A formatter that blanks the secrets it was handed, and token-shaped text."""

    def __init__(self, fmt: str | None = None) -> None:
        super().__init__(fmt)
        self.secrets: tuple[str, ...] = ()

    def hide(self, secrets: Iterable[str]) -> None:
        """Blank ``secrets`` by value from now on, besides those already hidden."""
        self.secrets = tuple(dict.fromkeys([*self.secrets, *(s for s in secrets if s)]))

    def redacted(self, text: str) -> str:
        """``text`` with the secrets, token-shaped values and labelled keys blanked."""
        return redact(text, self.secrets)


class TextFormatter(_Redacting):
    """The usual text line, passed through the inbound redaction like a JSON line's texts."""

    def __init__(self) -> None:
        """Lines as :data:`TEXT_FORMAT`."""
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        """The record as one redacted line."""
        return self.redacted(super().format(record))


class JsonFormatter(_Redacting):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": self.redacted(record.getMessage()),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_"):
                line[name] = self._field(name, value)
        if record.exc_info:
            line["exception"] = self.redacted(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False, default=str)

    def _field(self, name: str, value: Any) -> Any:
        if _SECRET_NAME.search(name):
            return REDACTED
        if value is None or isinstance(value, bool | int | float):
            return value
        return self.redacted(value if isinstance(value, str) else str(value))


def hide_in_logs(secrets: Iterable[str], logger: logging.Logger | None = None) -> None:
    """Have every handler of ``logger`` (the root's by default) blank ``secrets`` by value.

    A command calls it once it holds its secrets: the handlers were made before it read them.
    """
    wanted = tuple(s for s in secrets if len(s) >= _SHORTEST_SECRET)
    for handler in (logger or logging.getLogger()).handlers:
        if isinstance(handler.formatter, _Redacting):
            handler.formatter.hide(wanted)


def add_log_format(parser: argparse.ArgumentParser) -> None:
    """Give a command ``--log-format``."""
    parser.add_argument(
        "--log-format",
        choices=(TEXT, JSON),
        default=TEXT,
        help="log records as text lines or as one JSON object per line (default: %(default)s)",
    )


def log_handler(log_format: str) -> logging.Handler:
    """A standard-error handler writing ``log_format`` lines."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == JSON else TextFormatter())
    return handler


__all__ = [
    "JSON",
    "TEXT",
    "TEXT_FORMAT",
    "JsonFormatter",
    "TextFormatter",
    "add_log_format",
    "hide_in_logs",
    "log_handler",
]
