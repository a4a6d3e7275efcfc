"""Tracebacks: captured in full, shown without server file paths unless configured."""

import re
import traceback
from typing import Any

_FILE_RE = re.compile(r'File "([^"]+)"')


def format_exception(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


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
