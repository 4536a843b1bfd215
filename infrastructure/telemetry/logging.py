"""Logs: one JSON object per line for machines, or one readable line for a person at a terminal.

Every line names the trace and span it was written in (so a log search leads to the trace and
back), the request and the tenant (`infrastructure.telemetry.context`), and carries the
exception's traceback as a field rather than as extra lines that would break the JSON stream.
"""

from __future__ import annotations

import json as jsonlib
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from opentelemetry import trace

from infrastructure.telemetry import context

# What every LogRecord has; anything else on a record came from `extra=` and is logged as a field.
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


def configure_logging(
    level: str, *, json: bool | None = None, stream: TextIO | None = None
) -> logging.Handler:
    """Send every log record at `level` and above to `stream` (stderr), as JSON lines, or as
    readable lines when `json` is False; None chooses readable lines for a terminal and JSON
    otherwise. Replaces the handlers of the root logger, so calling it again reconfigures.
    """
    target = stream if stream is not None else sys.stderr
    as_json = not target.isatty() if json is None else json
    handler = logging.StreamHandler(target)
    handler.setFormatter(JsonFormatter() if as_json else ReadableFormatter())
    root = logging.getLogger()
    for previous in root.handlers[:]:
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler


def log_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The context of a record: trace and span ids, tenant, request id, and its `extra=` fields."""
    fields: dict[str, Any] = {}
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        fields["trace_id"] = format(span_context.trace_id, "032x")
        fields["span_id"] = format(span_context.span_id, "016x")
    for name, variable in (("tenant", context.tenant), ("request_id", context.request_id)):
        value = variable.get()
        if value is not None:
            fields[name] = value
    for name, value in vars(record).items():
        if name not in _RECORD_ATTRIBUTES:
            fields.setdefault(name, value)
    return fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **log_fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # default=str: an `extra=` value JSON cannot hold (a UUID, a datetime) is logged as text.
        return jsonlib.dumps(entry, default=str, ensure_ascii=False)


class ReadableFormatter(logging.Formatter):
    """`2025-01-31 12:00:00,123 INFO mercato.worker: message [request_id=… trace_id=…]`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = log_fields(record)
        if not fields:
            return line
        return line + " [" + " ".join(f"{name}={value}" for name, value in fields.items()) + "]"


def logging_config(level: str, *, json: bool | None = None) -> dict[str, Any]:
    """What `configure_logging` does, as a `logging.config.dictConfig` mapping: for uvicorn's
    `log_config`, which applies it in every worker process it starts (a handler installed in
    the parent would not reach them). Loggers that exist already keep working."""
    as_json = not sys.stderr.isatty() if json is None else json
    formatter = JsonFormatter if as_json else ReadableFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"mercato": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "mercato",
                "stream": "ext://sys.stderr",
            }
        },
        # uvicorn's loggers send their records up to the root's handler instead of their own.
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
    }
