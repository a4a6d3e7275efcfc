"""Tracebacks: captured in full, shown without server file paths unless configured."""

import re
import traceback
from typing import Any

_FILE_RE = re.compile(r'File "([^"]+)"')


def exception_message(exc: BaseException) -> str:
    """`str(exc)`, or a placeholder naming what went wrong when `__str__` itself raises."""
    try:
        return str(exc)
    except BaseException as failure:  # any failure of user code becomes text
        return f"<unprintable {type(exc).__name__}: __str__ raised {type(failure).__name__}>"


def format_exception(exc: BaseException) -> str:
    """The traceback of `exc` as text; never raises, whatever the exception does."""
    try:
        return "".join(traceback.format_exception(exc))
    except BaseException as failure:  # a broken exception must not break this
        return (
            f"{type(exc).__name__}: {exception_message(exc)}\n"
            f"(the traceback could not be formatted: {type(failure).__name__})\n"
        )


def redact_paths(text: str) -> str:
    """Replace each `File "/abs/dir/mod.py"` with `File "mod.py"`."""
    return _FILE_RE.sub(lambda m: f'File "{_basename(m.group(1))}"', text)


def _basename(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def redact_run_record(data: Any) -> Any:
    """Redact the traceback of a run record (`{"task_name", "params", "result", "error"}`)."""
    if not isinstance(data, dict):
        return data
    error = data.get("error")
    if isinstance(error, dict) and isinstance(error.get("traceback"), str):
        return {**data, "error": {**error, "traceback": redact_paths(error["traceback"])}}
    return data
