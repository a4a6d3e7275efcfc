"""Service logs: JSON lines or text with key=value extras, and the log context (ids)."""

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from app.core.logging import (
    ContextFilter,
    JsonFormatter,
    TextFormatter,
    bind,
    bound,
    configure_logging,
    context_value,
    log_context,
)


def make_record(
    message: str = "hello %s",
    args: tuple[Any, ...] = ("world",),
    *,
    extra: dict[str, Any] | None = None,
    level: int = logging.INFO,
    exc_info: Any = None,
) -> logging.LogRecord:
    logger = logging.getLogger("tests.core.logging")
    return logger.makeRecord(logger.name, level, __file__, 10, message, args, exc_info, extra=extra)


# JsonFormatter


def test_json_is_one_object_with_time_level_logger_and_message() -> None:
    record = make_record()

    line = JsonFormatter().format(record)
    entry = json.loads(line)

    assert entry == {
        "time": entry["time"],
        "level": "INFO",
        "logger": "tests.core.logging",
        "message": "hello world",
    }
    parsed = datetime.fromisoformat(entry["time"])
    assert parsed.utcoffset() is not None
    assert parsed.utcoffset() == UTC.utcoffset(None)
    assert abs(parsed.timestamp() - record.created) < 1e-3


def test_json_carries_extra_fields_and_stringifies_what_json_cannot_hold() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    record = make_record(
        extra={"job_id": "J1", "attempt": 2, "ok": True, "when": when, "tags": ["a"]}
    )

    entry = json.loads(JsonFormatter().format(record))

    assert entry["job_id"] == "J1"
    assert entry["attempt"] == 2
    assert entry["ok"] is True
    assert entry["when"] == str(when)
    assert entry["tags"] == ["a"]
    # Standard record attributes are not repeated as extras.
    assert not {"args", "msg", "levelno", "pathname", "lineno", "created"} & set(entry)


def test_json_stays_on_one_line_with_newlines_and_exceptions() -> None:
    try:
        raise ValueError("broken\nvalue")
    except ValueError:
        record = make_record("two\nlines", (), level=logging.ERROR, exc_info=sys.exc_info())

    line = JsonFormatter().format(record)

    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "two\nlines"
    assert entry["level"] == "ERROR"
    assert entry["exception"].startswith("Traceback")
    assert "ValueError: broken" in entry["exception"]


def test_json_leaves_out_the_coloured_copy_of_uvicorn_messages() -> None:
    record = make_record(extra={"color_message": "\x1b[1mhello\x1b[0m"})
    assert "color_message" not in json.loads(JsonFormatter().format(record))


# TextFormatter


def test_text_appends_extras_as_key_value_pairs() -> None:
    record = make_record(extra={"job_id": "J1", "attempt": 2})

    text = TextFormatter().format(record)

    assert " INFO tests.core.logging hello world" in text
    assert text.endswith(" job_id=J1 attempt=2")


def test_text_without_extras_is_just_the_line() -> None:
    text = TextFormatter().format(make_record())
    assert text.endswith("INFO tests.core.logging hello world")
    assert "=" not in text


# The log context


def test_bound_fields_reach_records_through_the_filter_and_are_reset() -> None:
    record_filter = ContextFilter()
    with bound(request_id="R1"):
        with bound(job_id="J1"):
            inner = make_record()
            assert record_filter.filter(inner)
            assert context_value("request_id") == "R1"
        outer = make_record()
        record_filter.filter(outer)
    after = make_record()
    record_filter.filter(after)

    assert (getattr(inner, "request_id", None), getattr(inner, "job_id", None)) == ("R1", "J1")
    assert (getattr(outer, "request_id", None), hasattr(outer, "job_id")) == ("R1", False)
    assert not hasattr(after, "request_id")
    assert log_context.get() is None
    assert context_value("request_id") is None


def test_an_explicit_extra_wins_over_the_context() -> None:
    with bound(job_id="from-context"):
        record = make_record(extra={"job_id": "explicit"})
        ContextFilter().filter(record)
    assert getattr(record, "job_id", None) == "explicit"


def test_bind_lasts_for_the_rest_of_the_context() -> None:
    def run() -> Any:
        bind(job_id="J9")
        bind(task_name="t")
        return log_context.get()

    assert contextvars.copy_context().run(run) == {"job_id": "J9", "task_name": "t"}
    assert log_context.get() is None


# configure_logging


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.mark.usefixtures("restore_root")
def test_configure_logging_json_writes_json_lines_with_the_context(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("debug", "json")
    configure_logging("debug", "json")
    root = logging.getLogger()
    ours = [h for h in root.handlers if isinstance(h.formatter, JsonFormatter)]
    assert len(ours) == 1, "configuring twice must not duplicate the handler"
    assert root.level == logging.DEBUG

    with bound(request_id="R7"):
        logging.getLogger("tests.core.configured").debug("configured %d", 1, extra={"k": "v"})

    lines = [line for line in capsys.readouterr().err.splitlines() if "configured" in line]
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert (entry["message"], entry["level"], entry["logger"]) == (
        "configured 1",
        "DEBUG",
        "tests.core.configured",
    )
    assert (entry["request_id"], entry["k"]) == ("R7", "v")


@pytest.mark.usefixtures("restore_root")
def test_configure_logging_text_uses_the_text_format(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("warning", "text")
    logging.getLogger("tests.core.configured").info("too quiet")
    with bound(job_id="J2"):
        logging.getLogger("tests.core.configured").warning("loud enough")

    err = capsys.readouterr().err
    assert "too quiet" not in err
    [line] = [line for line in err.splitlines() if "loud enough" in line]
    assert line.endswith("WARNING tests.core.configured loud enough job_id=J2")
