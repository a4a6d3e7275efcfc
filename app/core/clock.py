"""Time and ids in one place, so tests and storage agree on both."""

from datetime import UTC, datetime
from typing import Annotated

import ulid
from pydantic import PlainSerializer


def utcnow() -> datetime:
    """The current time, timezone-aware UTC with microseconds."""
    return datetime.now(UTC)


def new_id() -> str:
    """A new ULID string; monotonic within a millisecond, so ids sort by creation."""
    return str(ulid.monotonic.new().str)


ULID_PATTERN = r"^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$"


def isoformat(value: datetime) -> str:
    """ISO 8601 with microseconds and an explicit `+00:00` offset."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


Timestamp = Annotated[datetime, PlainSerializer(isoformat, return_type=str, when_used="json")]
"""A datetime that serialises as `isoformat` in JSON."""
