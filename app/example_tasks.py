"""Example tasks served when no `TASKEXEC_TASK_MODULES` are configured."""

import asyncio
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.artifacts.manager import ArtifactManager
from app.db.database import Database
from app.jobs.context import JobContext
from app.tasks.registry import TaskRegistry


async def greet_user(name: str = "World") -> dict[str, str]:
    """Simple task that returns a greeting."""
    return {"message": f"Hello, {name}!"}


def multiply_numbers(a: int, b: int) -> dict[str, int]:
    """Synchronous task that multiplies two integers (runs in a worker thread)."""
    return {"result": a * b}


async def process_data(
    database: Database, artifact_manager: ArtifactManager, session: AsyncSession
) -> dict[str, object]:
    """Dependencies are injected by annotation: the database, artifacts and a session."""
    jobs = await session.scalar(text("SELECT count(*) FROM jobs"))
    return {"status": "complete", "database": database.url.get_backend_name(), "jobs": jobs}


async def failing_task(message: str = "Something went wrong") -> dict[str, str]:
    """Always raises, to show how failures are stored."""
    raise ValueError(message)


async def sleep_task(seconds: float = 1.0, ctx: JobContext | None = None) -> dict[str, float]:
    """Sleeps, reporting progress; useful to watch a running job or cancel it."""
    steps = 10
    for step in range(steps):
        await asyncio.sleep(seconds / steps)
        if ctx is not None:
            ctx.progress(step + 1, steps, message=f"step {step + 1} of {steps}")
    return {"slept": seconds}


def blocking_task(seconds: float = 1.0) -> dict[str, float]:
    """A sync task that blocks its thread (the HTTP loop stays free)."""
    time.sleep(seconds)
    return {"slept": seconds}


async def noop() -> None:
    """Does nothing; for measuring the service itself."""


EXAMPLES: dict[str, tuple[Callable[..., Any], list[str]]] = {
    "greet_user": (greet_user, ["demo", "simple"]),
    "multiply_numbers": (multiply_numbers, ["demo", "math"]),
    "process_data": (process_data, ["demo", "injection"]),
    "failing_task": (failing_task, ["demo", "errors"]),
    "sleep_task": (sleep_task, ["demo", "slow"]),
    "blocking_task": (blocking_task, ["demo", "slow", "sync"]),
    "noop": (noop, ["bench"]),
}


def register_examples(registry: type[TaskRegistry] = TaskRegistry) -> None:
    """Register the examples (those not yet registered)."""
    for name, (fn, tags) in EXAMPLES.items():
        if not registry.has(name):
            registry.register_function(name, fn, tags=tags)
