"""Time and ids in one place, so tests and storage agree on both."""

import os
import threading
import time
from datetime import UTC, datetime
from typing import Annotated

from pydantic import PlainSerializer

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Every 10-bit value as two base32 digits: an id is 13 lookups, not 26 shifts.
_PAIRS = [high + low for high in _CROCKFORD for low in _CROCKFORD]
_RANDOM_BITS = 80


def _digits(value: int, pairs: int) -> str:
    """`value` as 2 * `pairs` Crockford base32 digits."""
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in range(10 * pairs - 10, -1, -10)])


def _random_digits(n: int) -> str:
    """80 bits as 16 digits, unrolled: this runs for every id."""
    p = _PAIRS
    return (
        p[n >> 70]
        + p[(n >> 60) & 1023]
        + p[(n >> 50) & 1023]
        + p[(n >> 40) & 1023]
        + p[(n >> 30) & 1023]
        + p[(n >> 20) & 1023]
        + p[(n >> 10) & 1023]
        + p[n & 1023]
    )


class _UlidSource:
    """ULIDs (48-bit millisecond time, 80 random bits), monotonic within a millisecond: the
    next id of the same millisecond is the previous one plus one, so ids sort by creation.

    The 26 digits are the time's 10 (two zero bits, then 48) and the random part's 16.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._last_random = 0
        self._prefix = _digits(0, 5)

    def new(self) -> str:
        now_ms = time.time_ns() // 1_000_000
        with self._lock:
            if now_ms > self._last_ms:
                self._start(now_ms)
            else:
                self._last_random += 1
                if self._last_random >> _RANDOM_BITS:  # the millisecond is used up
                    self._start(self._last_ms + 1)
            return self._prefix + _random_digits(self._last_random)

    def forget(self) -> None:
        """Draw new random bits for the next id (a forked child must not continue its
        parent's sequence, which another child continues too)."""
        self._lock = threading.Lock()
        self._last_ms = 0

    def _start(self, ms: int) -> None:
        self._last_ms = ms
        self._last_random = int.from_bytes(os.urandom(10))
        self._prefix = _digits(ms, 5)


_ids = _UlidSource()
os.register_at_fork(after_in_child=_ids.forget)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC with microseconds."""
    return datetime.now(UTC)


def new_id() -> str:
    """A new ULID string; monotonic within a millisecond, so ids sort by creation."""
    return _ids.new()


ULID_PATTERN = r"^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$"


def isoformat(value: datetime) -> str:
    """ISO 8601 with microseconds and an explicit `+00:00` offset."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


Timestamp = Annotated[datetime, PlainSerializer(isoformat, return_type=str, when_used="json")]
"""A datetime that serialises as `isoformat` in JSON."""
