"""When a schedule fires: cron (with an IANA timezone) or a fixed interval. Pure functions.

Cron expressions are evaluated by `cronsim`, which follows Debian cron across DST changes: a
job at a fixed local time that falls in the skipped hour runs once, at the first minute after
the gap; one in the repeated hour runs once, at its first occurrence; expressions with `*` in
the minute or hour field run in real (UTC) time, so `*/15 * * * *` fires every 15 minutes
across both changes. Interval schedules fire at whole multiples of `interval_seconds` since
the Unix epoch, so every process computes the same fire times with no shared state.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_INTERVAL_SECONDS = 366 * 86400
MAX_CRON_LENGTH = 200
MAX_TIMEZONE_LENGTH = 64


class TimingError(ValueError):
    """A cron expression, timezone or interval that cannot be used; `field` names it."""

    def __init__(self, message: str, field: str = "cron") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Timing:
    """How a schedule repeats: exactly one of `cron` (with `timezone`) and `interval_seconds`."""

    cron: str | None = None
    timezone: str = "UTC"
    interval_seconds: int | None = None

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.interval_seconds is None):
            raise TimingError("give exactly one of cron and interval_seconds")
        zone = _zone(self.timezone)
        if self.interval_seconds is not None:
            if not 1 <= self.interval_seconds <= MAX_INTERVAL_SECONDS:
                raise TimingError(
                    f"interval_seconds must be between 1 and {MAX_INTERVAL_SECONDS}",
                    "interval_seconds",
                )
            return
        assert self.cron is not None  # noqa: S101 - checked above
        if len(self.cron) > MAX_CRON_LENGTH or len(self.cron.split()) != 5:
            raise TimingError(
                f"cron {self.cron!r} must have 5 fields: minute hour day month weekday"
            )
        try:
            next(CronSim(self.cron, datetime(2000, 1, 1, tzinfo=zone)))
        except (CronSimError, StopIteration) as exc:
            raise TimingError(f"cron {self.cron!r} is not valid: {exc}") from None

    def after(self, moment: datetime) -> datetime:
        """The first fire time strictly after `moment` (UTC)."""
        return next(self.iter_after(moment))

    def iter_after(self, moment: datetime) -> Iterator[datetime]:
        """Fire times strictly after `moment`, ascending, in UTC."""
        if self.interval_seconds is not None:
            step = timedelta(seconds=self.interval_seconds)
            current = EPOCH + step * ((moment - EPOCH) // step)
            while True:
                current += step
                yield current
        else:
            assert self.cron is not None  # noqa: S101 - one of the two is set
            local = moment.astimezone(_zone(self.timezone))
            for fire in CronSim(self.cron, local):
                yield fire.astimezone(UTC)

    def next_times(self, moment: datetime, count: int) -> list[datetime]:
        """The next `count` fire times strictly after `moment`."""
        return list(islice(self.iter_after(moment), count))


def _zone(name: str) -> ZoneInfo:
    if not name or len(name) > MAX_TIMEZONE_LENGTH:
        raise TimingError(f"timezone {name!r} is not an IANA timezone name", "timezone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise TimingError(f"timezone {name!r} is not an IANA timezone name", "timezone") from None


@dataclass(frozen=True)
class FirePlan:
    """What to do with a schedule that is due: the fire times to queue (ascending), how many
    due fire times are given up, and the schedule's next fire time after this round."""

    fire: list[datetime]
    missed: int
    next_fire_at: datetime


def plan_fires(
    timing: Timing,
    next_fire_at: datetime,
    now: datetime,
    *,
    catchup: str,
    max_catchup: int,
    grace: timedelta,
    count_limit: int = 10_000,
) -> FirePlan:
    """Decide which of the fire times from `next_fire_at` up to `now` to queue.

    - `all`: every one of them, at most the `max_catchup` most recent;
    - `latest`: only the most recent;
    - `skip`: only the most recent, and only if it is less than `grace` late (so fire times
      that passed while no process was running are skipped).
    The others are counted as missed (counting stops at `count_limit`).
    """
    if next_fire_at > now:
        return FirePlan([], 0, next_fire_at)
    due, total = _due(timing, next_fire_at, now, keep=max(1, max_catchup), limit=count_limit)
    if catchup == "all":
        fire = due[-max_catchup:] if max_catchup > 0 else []
    elif catchup == "latest" or now - due[-1] <= grace:
        fire = due[-1:]
    else:
        fire = []
    return FirePlan(fire, total - len(fire), timing.after(now))


def _due(
    timing: Timing, first: datetime, now: datetime, *, keep: int, limit: int
) -> tuple[list[datetime], int]:
    """The last `keep` fire times in [first, now] (ascending) and how many there are in all
    (exact for intervals, at most `limit` for cron)."""
    if timing.interval_seconds is not None:
        step = timedelta(seconds=timing.interval_seconds)
        total = (now - first) // step + 1
        last = first + step * (total - 1)
        count = min(total, keep)
        return [last - step * (count - 1 - i) for i in range(count)], int(total)
    kept = [first]
    total = 1
    for moment in timing.iter_after(first):
        if moment > now or total >= limit:
            break
        kept.append(moment)
        total += 1
        if len(kept) > keep:
            del kept[0]
    if total >= limit:
        # Too many to walk: the most recent ones come from walking back from now.
        kept = _last_cron_times(timing, now, first, keep)
    return kept, total


def _last_cron_times(timing: Timing, now: datetime, first: datetime, keep: int) -> list[datetime]:
    assert timing.cron is not None  # noqa: S101 - only cron schedules are walked
    latest: list[datetime] = []
    # A fire time exactly at `now` counts: start one microsecond later (cronsim then strips it).
    start = (now + timedelta(microseconds=1)).astimezone(_zone(timing.timezone))
    for moment in CronSim(timing.cron, start, reverse=True):
        moment = moment.astimezone(UTC)
        if moment < first or len(latest) >= keep:
            break
        latest.append(moment)
    return latest[::-1]
