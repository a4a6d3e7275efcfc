"""What a named artifact may hold: its name, its kind, and the shape and size of its data."""

import json
import re
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from pydantic_core import PydanticSerializationError, to_jsonable_python

from app.artifacts.models import RESULT_NAME

ARTIFACT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
MAX_DESCRIPTION = 2000


class ArtifactKind(StrEnum):
    JSON = "json"
    TEXT = "text"
    MARKDOWN = "markdown"
    TABLE = "table"
    LINK = "link"


class ArtifactError(ValueError):
    """An artifact a task tried to store is not acceptable; the message says why."""


class ArtifactInvalid(ArtifactError):
    """The name, kind, parent or data shape of an artifact is not valid."""


class ArtifactTooLarge(ArtifactError):
    """The artifact's data is larger than `TASKEXEC_MAX_ARTIFACT_BYTES`."""


def check_name(name: str) -> str:
    if not isinstance(name, str) or not ARTIFACT_NAME_RE.fullmatch(name):
        raise ArtifactInvalid(
            f"artifact name {name!r} must match {ARTIFACT_NAME_RE.pattern} (1-200 characters)"
        )
    if name == RESULT_NAME:
        raise ArtifactInvalid(f"artifact name {RESULT_NAME!r} is the job's own result record")
    return name


def check_description(description: str | None) -> str | None:
    if description is not None and len(description) > MAX_DESCRIPTION:
        raise ArtifactInvalid(f"description is longer than {MAX_DESCRIPTION} characters")
    return description


def normalise(kind: str, data: Any, *, max_bytes: int) -> tuple[ArtifactKind, Any]:
    """The artifact's kind and its data in stored form; `ArtifactInvalid` for a wrong shape,
    `ArtifactTooLarge` past `max_bytes` of JSON."""
    try:
        artifact_kind = ArtifactKind(kind)
    except ValueError:
        kinds = ", ".join(k.value for k in ArtifactKind)
        raise ArtifactInvalid(f"artifact kind {kind!r} is not one of: {kinds}") from None
    try:
        plain = to_jsonable_python(data)
        text = json.dumps(plain, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
        size = len(text.encode())
    except (PydanticSerializationError, TypeError, ValueError) as exc:
        raise ArtifactInvalid(f"artifact data cannot be stored as JSON: {exc}") from exc
    if size > max_bytes:
        raise ArtifactTooLarge(
            f"artifact data is {size} bytes of JSON; the limit is {max_bytes} "
            "(TASKEXEC_MAX_ARTIFACT_BYTES)"
        )
    return artifact_kind, _SHAPES[artifact_kind](plain)


def _json(data: Any) -> Any:
    return data


def _text(data: Any) -> Any:
    if not isinstance(data, str):
        raise ArtifactInvalid(f"a text or markdown artifact holds a string, not {_type(data)}")
    return data


def _table(data: Any) -> Any:
    """`{"columns": [...], "rows": [[...], ...]}`, or a list of records with the same keys."""
    if isinstance(data, list) and all(isinstance(row, dict) for row in data):
        columns = list(data[0]) if data else []
        if any(list(row) != columns for row in data):
            raise ArtifactInvalid("every record of a table artifact must have the same keys")
        return {"columns": columns, "rows": [list(row.values()) for row in data]}
    if not isinstance(data, dict) or set(data) != {"columns", "rows"}:
        raise ArtifactInvalid(
            'a table artifact is {"columns": [...], "rows": [[...], ...]} or a list of records'
        )
    columns, rows = data["columns"], data["rows"]
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise ArtifactInvalid("table columns must be a list of strings")
    if not isinstance(rows, list):
        raise ArtifactInvalid("table rows must be a list of lists")
    for index, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(columns):
            raise ArtifactInvalid(f"table row {index} must be a list of {len(columns)} values")
    return data


def _link(data: Any) -> Any:
    """`{"url": "https://...", "title": "..."}` (title optional), or the URL alone."""
    if isinstance(data, str):
        data = {"url": data}
    if not isinstance(data, dict) or not set(data) <= {"url", "title"} or "url" not in data:
        raise ArtifactInvalid('a link artifact is {"url": ..., "title": ...} or a URL string')
    url, title = data["url"], data.get("title")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ArtifactInvalid(f"link url {url!r} must be an absolute http(s) URL")
    if title is not None and not isinstance(title, str):
        raise ArtifactInvalid("link title must be a string")
    return data


def _type(value: Any) -> str:
    return type(value).__name__


_SHAPES = {
    ArtifactKind.JSON: _json,
    ArtifactKind.TEXT: _text,
    ArtifactKind.MARKDOWN: _text,
    ArtifactKind.TABLE: _table,
    ArtifactKind.LINK: _link,
}
