"""Fire times and catch-up decisions: pure functions, on a clock the test controls."""

from datetime import UTC, datetime, timedelta

import pytest

from app.schedules.definition import Schedule
from app.schedules.timing import Timing, TimingError, plan_fires


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


GRACE = timedelta(seconds=60)


def test_cron_fires_strictly_after_the_moment() -> None:
    timing = Timing(cron="*/5 * * * *")
    assert timing.after(utc(2026, 1, 1, 10, 0)) == utc(2026, 1, 1, 10, 5)
    assert timing.next_times(utc(2026, 1, 1, 10, 4, 59), 3) == [
        utc(2026, 1, 1, 10, 5),
        utc(2026, 1, 1, 10, 10),
        utc(2026, 1, 1, 10, 15),
    ]


def test_cron_in_a_timezone_is_local_wall_clock_time() -> None:
    timing = Timing(cron="0 9 * * 1-5", timezone="America/New_York")
    # Friday 2026-01-02 09:00 EST is 14:00 UTC; the next is Monday 2026-01-05.
    assert timing.next_times(utc(2026, 1, 2, 0, 0), 2) == [
        utc(2026, 1, 2, 14, 0),
        utc(2026, 1, 5, 14, 0),
    ]


def test_a_fixed_time_in_the_skipped_hour_runs_once_just_after_the_gap() -> None:
    # Europe/Paris springs forward on 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC).
    timing = Timing(cron="30 2 * * *", timezone="Europe/Paris")
    fires = timing.next_times(utc(2026, 3, 27, 12, 0), 3)
    assert fires == [
        utc(2026, 3, 28, 1, 30),  # 02:30 CET
        utc(2026, 3, 29, 1, 0),  # 02:30 does not exist: 03:00 CEST, the first minute after
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
    ]


def test_a_fixed_time_in_the_repeated_hour_runs_once() -> None:
    # Europe/Paris falls back on 2026-10-25: 03:00 CEST becomes 02:00 CET (01:00 UTC).
    timing = Timing(cron="30 2 * * *", timezone="Europe/Paris")
    fires = timing.next_times(utc(2026, 10, 24, 12, 0), 2)
    assert fires == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]


def test_a_frequent_cron_keeps_real_time_across_the_fall_back() -> None:
    timing = Timing(cron="*/30 * * * *", timezone="Europe/Paris")
    fires = timing.next_times(utc(2026, 10, 24, 23, 59), 6)
    # Every 30 real minutes, including both passes through 02:00-03:00 local time.
    assert fires == [utc(2026, 10, 25, 0, 0) + timedelta(minutes=30 * i) for i in range(6)]


def test_intervals_are_whole_multiples_since_the_epoch() -> None:
    timing = Timing(interval_seconds=60)
    assert timing.after(utc(2026, 1, 1, 10, 0, 0)) == utc(2026, 1, 1, 10, 1)
    assert timing.after(utc(2026, 1, 1, 10, 0, 59)) == utc(2026, 1, 1, 10, 1)
    seconds = Timing(interval_seconds=1)
    moment = datetime(2026, 1, 1, 10, 0, 0, 400_000, tzinfo=UTC)
    assert seconds.next_times(moment, 2) == [utc(2026, 1, 1, 10, 0, 1), utc(2026, 1, 1, 10, 0, 2)]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"cron": "* * * *"}, "cron"),
        ({"cron": "0 0 * * * *"}, "cron"),
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "0 0 31 2 *"}, "cron"),
        ({"cron": "* * * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"cron": "* * * * *", "timezone": "../../etc/passwd"}, "timezone"),
        ({"cron": "* * * * *", "timezone": "Europe"}, "timezone"),
        ({"interval_seconds": 0}, "interval_seconds"),
        ({}, "cron"),
        ({"cron": "* * * * *", "interval_seconds": 5}, "cron"),
    ],
)
def test_bad_timings_are_refused(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(TimingError) as caught:
        Timing(**kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_schedule_strings_are_cron_in_utc_and_bad_options_are_refused() -> None:
    assert Schedule.parse("0 * * * *") == Schedule(cron="0 * * * *")
    with pytest.raises(TimingError):
        Schedule(interval_seconds=5, catchup="sometimes")  # type: ignore[arg-type]
    with pytest.raises(TimingError):
        Schedule.parse(5)


# Catch-up after downtime: the schedule's next fire time was 10:00; it is now 10:05:30.

EVERY_MINUTE = Timing(interval_seconds=60)
NEXT = utc(2026, 1, 1, 10, 0)
NOW = utc(2026, 1, 1, 10, 5, 30)


def test_nothing_is_due_before_the_next_fire_time() -> None:
    plan = plan_fires(
        EVERY_MINUTE, NEXT, NEXT - timedelta(seconds=1), catchup="all", max_catchup=10, grace=GRACE
    )
    assert (plan.fire, plan.missed, plan.next_fire_at) == ([], 0, NEXT)


def test_a_fire_time_that_just_came_fires_in_every_mode() -> None:
    for catchup in ("skip", "latest", "all"):
        plan = plan_fires(
            EVERY_MINUTE,
            NEXT,
            NEXT + timedelta(milliseconds=3),
            catchup=catchup,
            max_catchup=10,
            grace=GRACE,
        )
        assert (plan.fire, plan.missed) == ([NEXT], 0), catchup
        assert plan.next_fire_at == utc(2026, 1, 1, 10, 1)


def test_catchup_all_fires_every_missed_time_in_order() -> None:
    plan = plan_fires(EVERY_MINUTE, NEXT, NOW, catchup="all", max_catchup=10, grace=GRACE)
    assert plan.fire == [NEXT + timedelta(minutes=i) for i in range(6)]
    assert plan.missed == 0
    assert plan.next_fire_at == utc(2026, 1, 1, 10, 6)


def test_catchup_all_is_bounded_to_the_most_recent() -> None:
    plan = plan_fires(EVERY_MINUTE, NEXT, NOW, catchup="all", max_catchup=2, grace=GRACE)
    assert plan.fire == [utc(2026, 1, 1, 10, 4), utc(2026, 1, 1, 10, 5)]
    assert plan.missed == 4


def test_catchup_latest_fires_only_the_most_recent() -> None:
    plan = plan_fires(EVERY_MINUTE, NEXT, NOW, catchup="latest", max_catchup=10, grace=GRACE)
    assert (plan.fire, plan.missed) == ([utc(2026, 1, 1, 10, 5)], 5)


def test_catchup_skip_fires_the_latest_only_while_it_is_within_grace() -> None:
    plan = plan_fires(EVERY_MINUTE, NEXT, NOW, catchup="skip", max_catchup=10, grace=GRACE)
    assert (plan.fire, plan.missed) == ([utc(2026, 1, 1, 10, 5)], 5)
    late = plan_fires(
        EVERY_MINUTE, NEXT, NOW, catchup="skip", max_catchup=10, grace=timedelta(seconds=10)
    )
    assert (late.fire, late.missed, late.next_fire_at) == ([], 6, utc(2026, 1, 1, 10, 6))


def test_cron_catchup_across_a_long_downtime_is_bounded() -> None:
    timing = Timing(cron="* * * * *")
    now = NEXT + timedelta(days=30, seconds=5)
    plan = plan_fires(
        timing, NEXT, now, catchup="all", max_catchup=3, grace=GRACE, count_limit=1000
    )
    assert plan.fire == [now - timedelta(seconds=5) - timedelta(minutes=2 - i) for i in range(3)]
    assert plan.missed == 1000 - 3  # counting stops at the limit
    assert plan.next_fire_at == now - timedelta(seconds=5) + timedelta(minutes=1)


def test_cron_catchup_in_a_timezone_walks_local_fire_times() -> None:
    timing = Timing(cron="0 * * * *", timezone="Asia/Kolkata")  # UTC+05:30: at hh:30 UTC
    first = utc(2026, 1, 1, 0, 30)
    plan = plan_fires(
        timing, first, utc(2026, 1, 1, 3, 40), catchup="all", max_catchup=10, grace=GRACE
    )
    assert plan.fire == [utc(2026, 1, 1, h, 30) for h in range(4)]
    assert plan.next_fire_at == utc(2026, 1, 1, 4, 30)
