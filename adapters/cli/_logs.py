"""How the command logs: text by default, or one JSON object per line (``--log-format json``).

A JSON line carries the record's time, level, logger and message, then every field the code
passed as ``extra`` (flow, payment id, reference, wallet, event, from, to, actor, reason...).
Secrets never reach a line: a field named like a secret is blanked whatever it holds, and every
text is passed through the inbound redaction (token-shaped values, labelled tokens and keys), in
text lines too.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
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
_SECRET_NAME: Final = re.compile(r"(?i)token|secret|password|merchant_?key|authorization")


class TextFormatter(logging.Formatter):
    """The usual text line, passed through the inbound redaction like a JSON line's texts."""

    def __init__(self) -> None:
        """Lines as :data:`TEXT_FORMAT`."""
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        """The record as one redacted line."""
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_"):
                line[name] = _field(name, value)
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False, default=str)


def _field(name: str, value: Any) -> Any:
    if _SECRET_NAME.search(name):
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


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
    "log_handler",
]
