"""Logging for the service process: text or JSON lines, with request and job ids attached."""

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

# Fields every record gets while they are set: request_id (HTTP), job_id/task_name (a run).
log_context: ContextVar[dict[str, Any] | None] = ContextVar("taskexec_log_context", default=None)

# Record attributes that are not extra fields (uvicorn adds an ANSI-coloured copy of messages).
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}


@contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Attach `fields` to every record logged in this context."""
    token = log_context.set({**(log_context.get() or {}), **fields})
    try:
        yield
    finally:
        log_context.reset(token)


def context_value(key: str) -> Any:
    """A field of the current log context, or None."""
    return (log_context.get() or {}).get(key)


def bind(**fields: Any) -> None:
    """Attach `fields` for the rest of the current context (e.g. a task's own context)."""
    log_context.set({**(log_context.get() or {}), **fields})


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (log_context.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then every extra field."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """Plain text, with the extra fields as key=value at the end."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD and k[0] != "_"}
        if extras:
            text += " " + " ".join(f"{key}={value}" for key, value in extras.items())
        return text


def configure_logging(level: str, fmt: str = "text") -> None:
    """Root logging for a service process (`taskexec serve` / `worker`)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for existing in [h for h in root.handlers if isinstance(h, logging.StreamHandler)]:
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())


def uvicorn_log_config(level: str) -> dict[str, Any]:
    """uvicorn's loggers through the same handler (so access lines are JSON too)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {
            name: {"level": level.upper(), "handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }
