"""Input checks shared by the routes: what every backend can store and every task can use.

JSON allows neither NaN nor Infinity, and PostgreSQL stores no NUL character in text or JSONB;
Python's `json` accepts the first and both databases would be handed the second. Both are
refused at the edge, with one problem entry per offending value.
"""

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request

from app.core.errors import AppError

# The furthest ahead a job may be scheduled, by `delay` or by `run_at`.
MAX_HORIZON_SECONDS = 366 * 86400
# Event numbers are 32-bit integers in every backend.
MAX_EVENT_NUMBER = 2**31 - 1
NO_NUL_PATTERN = r"^[^\x00]*$"


class UnsupportedMediaTypeError(AppError):
    status, code, title = 415, "unsupported_media_type", "Unsupported media type"


def json_value_problems(value: Any, loc: list[str]) -> Iterator[dict[str, Any]]:
    """Problem entries for every non-finite number and NUL character in a JSON value."""
    stack: list[tuple[Any, list[str]]] = [(value, loc)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            yield _entry(where, f"{item} is not a finite number", "finite_number")
        elif isinstance(item, str) and "\x00" in item:
            yield _entry(where, "strings may not contain NUL (\\u0000)", "nul_character")
        elif isinstance(item, dict):
            for key, child in item.items():
                if "\x00" in str(key):
                    yield _entry(
                        [*where, repr(key)], "keys may not contain NUL (\\u0000)", "nul_character"
                    )
                stack.append((child, [*where, str(key)]))
        elif isinstance(item, list | tuple):
            stack.extend((child, [*where, str(index)]) for index, child in enumerate(item))


def _entry(loc: list[str], msg: str, kind: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": kind}


def check_start_time(run_at: datetime) -> datetime:
    """`run_at` in UTC, within the date range and at most the horizon ahead (ValueError)."""
    try:
        utc = run_at.astimezone(UTC)
    except OverflowError:
        raise ValueError("run_at is outside the supported date range") from None
    horizon = datetime.now(UTC) + timedelta(seconds=MAX_HORIZON_SECONDS)
    if utc > horizon:
        raise ValueError(
            f"run_at may be at most {MAX_HORIZON_SECONDS // 86400} days ahead (like delay)"
        )
    return run_at


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    kind, _, subtype = media.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


async def require_json_body(request: Request) -> None:
    """415 for a request body that declares a media type other than JSON."""
    content_type = request.headers.get("content-type")
    has_body = request.headers.get("content-length", "0") != "0" or (
        "transfer-encoding" in request.headers
    )
    if has_body and content_type is not None and not _is_json(content_type):
        raise UnsupportedMediaTypeError(
            f"The request body must be application/json, not {content_type[:100]!r}."
        )
