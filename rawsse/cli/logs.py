"""Log formats for the CLI: readable text, or one JSON object per line for shippers."""

from __future__ import annotations

import json
import logging
import sys

from rawsse.text import escape_unsafe

__all__ = ["LOG_FORMATS", "JsonFormatter", "TextFormatter", "configure"]

LOG_FORMATS = ("text", "json")

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class TextFormatter(logging.Formatter):
    """One line per message: what a client chose (a topic, a path) cannot start
    another line or disguise this one, its unsafe characters being escaped
    (:func:`rawsse.text.escape_unsafe`). A traceback keeps its lines."""

    def __init__(self) -> None:
        super().__init__(_TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_unsafe(record.message)
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message"}`` (and ``exc_info`` when present)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        # The same JSON either way; escaped, a line separator cannot break the line for
        # a reader that splits on it, nor a control or format character reach a terminal.
        return escape_unsafe(json.dumps(entry, ensure_ascii=False), json=True)


def configure(level: str, fmt: str) -> None:
    """Send rawsse's logs to stderr at ``level`` in format ``fmt`` (``text`` or ``json``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
