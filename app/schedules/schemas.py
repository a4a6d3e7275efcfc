"""Schedule schemas as the API shows them."""

from datetime import datetime
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.core.clock import Timestamp
from app.schedules.definition import Catchup, Overlap
from app.schedules.models import ScheduleRecord
from app.schedules.timing import MAX_CRON_LENGTH, MAX_INTERVAL_SECONDS, MAX_TIMEZONE_LENGTH

NEXT_FIRE_TIMES = 5

CronField = Field(
    default=None,
    min_length=1,
    max_length=MAX_CRON_LENGTH,
    description="5-field cron expression (minute hour day month weekday), in `timezone`.",
    examples=["*/5 * * * *"],
)
TimezoneField = Field(
    default=None,
    min_length=1,
    max_length=MAX_TIMEZONE_LENGTH,
    description="IANA timezone of the cron expression (default UTC).",
    examples=["Europe/Paris"],
)
IntervalField = Field(
    default=None,
    ge=1,
    le=MAX_INTERVAL_SECONDS,
    description="Fire every N seconds (at whole multiples of N since the Unix epoch).",
)


class ScheduleCreate(BaseModel):
    """A new schedule: a task, its params, and either `cron` or `interval_seconds`."""

    model_config = ConfigDict(extra="forbid")

    task_name: str = Field(min_length=1, max_length=200, pattern=r"^[a-zA-Z0-9_-]+$")
    params: dict[str, Any] = Field(default_factory=dict)
    cron: str | None = CronField
    timezone: str | None = TimezoneField
    interval_seconds: int | None = IntervalField
    enabled: bool = True
    catchup: Catchup = Field(
        default="latest",
        description="Fire times missed while no process ran: `skip` them, fire the `latest` "
        "one, or fire `all` (up to TASKEXEC_SCHEDULE_MAX_CATCHUP).",
    )
    overlap: Overlap = Field(
        default="allow",
        description="`skip`: do not fire while the previous fire's job is unfinished.",
    )

    @model_validator(mode="after")
    def _one_timing(self) -> "ScheduleCreate":
        if (self.cron is None) == (self.interval_seconds is None):
            raise ValueError("give exactly one of cron and interval_seconds")
        if self.interval_seconds is not None and self.timezone is not None:
            raise ValueError("timezone applies to cron schedules only")
        return self


class ScheduleUpdate(BaseModel):
    """Changes to a schedule; fields left out stay as they are. Giving `cron` replaces an
    interval and the other way round. `enabled: false` pauses it, `true` resumes it from now."""

    model_config = ConfigDict(extra="forbid")

    params: dict[str, Any] | None = None
    cron: str | None = CronField
    timezone: str | None = TimezoneField
    interval_seconds: int | None = IntervalField
    enabled: bool | None = None
    catchup: Catchup | None = None
    overlap: Overlap | None = None

    @model_validator(mode="after")
    def _one_timing(self) -> "ScheduleUpdate":
        if self.cron is not None and self.interval_seconds is not None:
            raise ValueError("give either cron or interval_seconds, not both")
        if self.interval_seconds is not None and self.timezone is not None:
            raise ValueError("timezone applies to cron schedules only")
        return self


class ScheduleRead(BaseModel):
    """A schedule, with its next few fire times (none while it is paused)."""

    id: str
    task_name: str
    params: dict[str, Any]
    cron: str | None
    timezone: str | None
    interval_seconds: int | None
    enabled: bool
    catchup: Catchup
    overlap: Overlap
    defined_in_code: bool = Field(
        description="Declared with `schedule=` on the task; upserted at every start-up."
    )
    next_fire_at: Timestamp | None = Field(description="The next fire time not yet handled.")
    next_fire_times: list[Timestamp]
    last_fired_at: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def from_record(cls, record: ScheduleRecord) -> "ScheduleRead":
        upcoming: list[datetime] = []
        if record.enabled:
            first = record.next_fire_at
            upcoming = [first, *record.timing.next_times(first, NEXT_FIRE_TIMES - 1)]
        return cls(
            id=record.id,
            task_name=record.task_name,
            params=record.params,
            cron=record.cron,
            timezone=record.timezone if record.cron is not None else None,
            interval_seconds=record.interval_seconds,
            enabled=record.enabled,
            catchup=cast(Catchup, record.catchup),
            overlap=cast(Overlap, record.overlap),
            defined_in_code=record.defined_in_code,
            next_fire_at=record.next_fire_at if record.enabled else None,
            next_fire_times=upcoming,
            last_fired_at=record.last_fired_at,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )


class TriggerAccepted(BaseModel):
    """A fire was queued by hand."""

    job_id: str
    scheduled_for: Timestamp
    message: str
