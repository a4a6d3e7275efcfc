"""Byte bounds on what a job stores: its result, error message, traceback and log lines.

Values are bounded where they are made (the runner's outcome, the event sink), so everything
written downstream is already bounded. Texts over a bound are cut with a visible marker that
says how many bytes were dropped; a result over its bound fails the job instead (a cut result
would be a wrong one).
"""

import math
import re
from dataclasses import dataclass
from typing import Any

from app.core.settings import Settings

KIB = 1024
MIB = 1024 * KIB

_CONTROL = re.compile(r"[\x00-\x1f]")
_SHORT_ESCAPES = frozenset("\b\f\n\r\t")


@dataclass(frozen=True)
class Bounds:
    """The limits, in UTF-8 bytes, of what one job stores (defaults as in the settings)."""

    max_result_bytes: int = 10 * MIB
    max_error_message_bytes: int = 8 * KIB
    max_traceback_bytes: int = 64 * KIB
    max_log_line_bytes: int = 32 * KIB
    max_log_bytes: int = 2 * MIB
    # Log lines keep server file paths in the tracebacks they carry only when this is set.
    expose_traceback_paths: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> "Bounds":
        return cls(
            max_result_bytes=settings.max_result_bytes,
            max_error_message_bytes=settings.max_error_message_bytes,
            max_traceback_bytes=settings.max_traceback_bytes,
            max_log_line_bytes=settings.max_log_line_bytes,
            max_log_bytes=settings.max_log_bytes,
            expose_traceback_paths=settings.expose_traceback_paths,
        )


def utf8_size(text: str) -> int:
    """Bytes of `text` in UTF-8 (no copy for ASCII text)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _marker(dropped: int) -> str:
    return f"… [truncated {dropped} bytes]"


def truncate_head(text: str, limit: int) -> str:
    """`text` if it fits in `limit` bytes, else its start and a marker, `limit` bytes at most."""
    if len(text) <= limit // 4 or utf8_size(text) <= limit:
        return text
    total = utf8_size(text)
    room = max(0, limit - len(_marker(total).encode()))
    head = _prefix(text, room)
    return head + _marker(total - utf8_size(head))


def truncate_middle(text: str, limit: int) -> str:
    """`text` if it fits in `limit` bytes, else its start and its end around a marker.

    For tracebacks and log lines: the start says what happened, the end where it was raised.
    """
    return cut_middle(text, limit)[0]


def cut_middle(text: str, limit: int) -> tuple[str, int]:
    """`truncate_middle`, and the number of bytes of `text` it left out."""
    if len(text) <= limit // 4 or utf8_size(text) <= limit:
        return text, 0
    total = utf8_size(text)
    room = max(0, limit - len(_marker(total).encode()) - 2)
    head = _prefix(text, room - room // 2)
    tail = _suffix(text, room // 2)
    dropped = total - utf8_size(head) - utf8_size(tail)
    return f"{head}\n{_marker(dropped)}\n{tail}", dropped


def _prefix(text: str, size: int) -> str:
    """The longest start of `text` that fits in `size` bytes (never half a character)."""
    piece = text[:size]
    return piece.encode("utf-8", "surrogatepass")[:size].decode("utf-8", "ignore")


def _suffix(text: str, size: int) -> str:
    if size <= 0:
        return ""
    piece = text[-size:]
    return piece.encode("utf-8", "surrogatepass")[-size:].decode("utf-8", "ignore")


def json_size(value: Any) -> int:
    """Bytes of `value` as compact UTF-8 JSON, counted without building the text.

    `value` holds only JSON types (as `to_jsonable_python` returns them). Raises `ValueError`
    for NaN or infinity and `TypeError` for anything else JSON cannot hold.
    """
    size = 0
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str:
            size += _string_size(item)
        elif item is None or item is True:
            size += 4
        elif item is False:
            size += 5
        elif kind is int:
            size += len(str(item))
        elif kind is float:
            if not math.isfinite(item):
                raise ValueError(f"{item!r} is not valid JSON")
            size += len(repr(item))
        elif kind is list or kind is tuple:
            size += len(item) + 1 if item else 2
            stack.extend(item)
        elif kind is dict:
            size += 2 * len(item) + 1 if item else 2
            for key, member in item.items():
                size += _string_size(key if type(key) is str else _key_text(key))
                stack.append(member)
        else:
            raise TypeError(f"{kind.__name__} is not a JSON type")
    return size


def _key_text(key: Any) -> str:
    """A non-string key as `json.dumps` writes it; `TypeError` for keys JSON cannot hold."""
    if key is None or isinstance(key, bool):
        return {None: "null", True: "true", False: "false"}[key]
    if isinstance(key, int):
        return str(key)
    if isinstance(key, float):
        if not math.isfinite(key):
            raise ValueError(f"{key!r} is not valid JSON")
        return repr(key)
    raise TypeError(f"a {type(key).__name__} key is not valid JSON")


def _string_size(text: str) -> int:
    size = utf8_size(text) + 2 + text.count('"') + text.count("\\")
    if not text.isprintable():
        size += sum(1 if c in _SHORT_ESCAPES else 5 for c in _CONTROL.findall(text))
    return size
