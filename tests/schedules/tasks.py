"""Task module for the multi-process schedule tests: `tick` is declared to fire every second."""

from app.core.clock import isoformat
from app.jobs.context import JobContext
from app.schedules.definition import Schedule
from app.tasks.registry import TaskRegistry


def tick(ctx: JobContext) -> str | None:
    """Returns the fire time it ran for."""
    return None if ctx.scheduled_for is None else isoformat(ctx.scheduled_for)


def register_tasks(registry: type[TaskRegistry]) -> None:
    registry.register_function("tick", tick, schedule=Schedule(interval_seconds=1))


register_tasks(TaskRegistry)
