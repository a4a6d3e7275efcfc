"""`Schedule`: a schedule given in code, `@TaskRegistry.register(..., schedule=Schedule(...))`."""

from dataclasses import dataclass, field
from typing import Any, Literal

from app.schedules.timing import Timing, TimingError

Catchup = Literal["skip", "latest", "all"]
Overlap = Literal["allow", "skip"]
CATCHUP_VALUES: tuple[str, ...] = ("skip", "latest", "all")
OVERLAP_VALUES: tuple[str, ...] = ("allow", "skip")


@dataclass(frozen=True)
class Schedule:
    """When and how a task runs by itself.

    `Schedule(cron="0 3 * * *", timezone="Europe/Paris")` or `Schedule(interval_seconds=60)`;
    `params` are the task's params for every fire. A plain string given as `schedule=` is a
    cron expression in UTC. Fire times missed while no process ran are handled by `catchup`
    (`skip`, `latest`, `all`); `overlap="skip"` skips a fire while the previous one's job is
    unfinished.
    """

    cron: str | None = None
    timezone: str = "UTC"
    interval_seconds: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    catchup: Catchup = "latest"
    overlap: Overlap = "allow"
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.catchup not in CATCHUP_VALUES:
            raise TimingError(f"catchup must be one of {', '.join(CATCHUP_VALUES)}")
        if self.overlap not in OVERLAP_VALUES:
            raise TimingError(f"overlap must be one of {', '.join(OVERLAP_VALUES)}")
        if not isinstance(self.params, dict):
            raise TimingError("params must be a dict")
        self.timing  # noqa: B018 - validates cron, timezone and interval

    @property
    def timing(self) -> Timing:
        return Timing(self.cron, self.timezone, self.interval_seconds)

    @classmethod
    def parse(cls, value: object) -> "Schedule":
        """A `Schedule`, or a cron string (UTC) made into one; `ValueError` otherwise."""
        if isinstance(value, Schedule):
            return value
        if isinstance(value, str):
            return cls(cron=value)
        raise TimingError(f"schedule must be a cron string or a Schedule, not {value!r}")
