"""Logs for people (``text``) or machines (``json``), with structured fields.

Messages are short sentences; details go in ``extra={...}`` fields (``pump``, ``batch_id``,
``records``…), which the text format prints as ``key=value`` and the JSON format as keys.
ERROR means data at risk or an operator must act; WARNING means the pump recovered on its own.

Both formatters pass every line through :func:`pump.redact.scrub`: whatever a driver put in an
error (a DSN, a password it echoed), no log line carries a secret, at any level.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from pump.redact import scrub, scrub_value

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "warning": logging.WARNING, "error": logging.ERROR}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


def _ts(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{k}={_text(v)}" for k, v in _fields(record).items())
        line = f"{_ts(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if extra:
            line += "  " + extra
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return scrub(line)


def _text(v: Any) -> str:
    s = str(v)
    return f'"{s}"' if " " in s or not s else s


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": _ts(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        # Scrubbed before encoding: a secret with a quote or backslash would no longer match once escaped.
        return orjson.dumps(scrub_value(doc), default=lambda v: scrub(str(v))).decode()


def setup(level: str = "info", fmt: str = "text", stream: Any = None) -> None:
    """Configure the root logger once for the process (idempotent)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_pump", False):
            root.removeHandler(old)
    handler._pump = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(LEVELS.get(level, logging.INFO))
