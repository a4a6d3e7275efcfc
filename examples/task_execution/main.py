"""A task service with example tasks: simple, parameterised, injected and failing ones.

Run it from the repository root:

    uvicorn examples.task_execution.main:app --reload
    fastapi dev examples/task_execution/main.py      # needs `pip install "fastapi[standard]"`

then open http://127.0.0.1:8000/docs. The database is `TASKEXEC_DATABASE_URL` (by default the
SQLite file `./data/taskexec.db`, created and migrated when the service starts).

Tasks register when this module is imported, as in any task module. The registration lives in
`register_tasks()` and is skipped when the tasks are already there, so importing the module twice
(a reload, or a test that imported it before) does not raise "already registered".
"""

import asyncio
from typing import Any

from fastapi import FastAPI
from sqlalchemy import text

from app import (
    ArtifactIn,
    ArtifactManager,
    AsyncSession,
    Database,
    JobContext,
    JobScheduler,
    ServiceBuilder,
    ServiceInfo,
    Settings,
    TaskRegistry,
)


def _register_simple_tasks() -> None:
    @TaskRegistry.register("greet_user", tags=["demo", "simple"])
    async def greet_user(name: str = "World") -> dict[str, str]:
        """Simple task that returns a greeting."""
        return {"message": f"Hello, {name}!"}


def _register_parameterised_tasks() -> None:
    @TaskRegistry.register("add", tags=["demo", "math"])
    async def add(a: int, b: int) -> dict[str, int]:
        """Add two integers (async: runs on the event loop)."""
        return {"result": a + b}

    def multiply_numbers(a: int, b: int) -> dict[str, int]:
        """Multiply two integers (sync: runs in a worker thread)."""
        return {"result": a * b}

    TaskRegistry.register_function("multiply_numbers", multiply_numbers, tags=["demo", "math"])


def _register_injected_tasks() -> None:
    @TaskRegistry.register("process_data", tags=["demo", "injection"])
    async def process_data(
        database: Database, artifact_manager: ArtifactManager, label: str = "sample"
    ) -> dict[str, object]:
        """Store a document with the injected artifact manager; report the database backend.

        `database` and `artifact_manager` are injected by annotation; only `label` is a request
        parameter.
        """
        stored = await artifact_manager.save(ArtifactIn(data={"label": label}))
        return {
            "status": "complete",
            "database": database.url.get_backend_name(),
            "stored_artifact_id": stored.id,
        }

    @TaskRegistry.register("count_jobs", tags=["demo", "injection"])
    async def count_jobs(session: AsyncSession) -> dict[str, int]:
        """Count the rows of the job table through an injected session."""
        count = await session.scalar(text("SELECT count(*) FROM jobs"))
        return {"jobs": int(count or 0)}

    @TaskRegistry.register("long_task", tags=["demo", "injection", "slow"])
    async def long_task(ctx: JobContext, steps: int = 5, delay: float = 0.2) -> dict[str, int]:
        """Work in steps, reporting progress through the injected job context."""
        for step in range(1, steps + 1):
            await asyncio.sleep(delay)
            ctx.progress(step, steps, message=f"step {step} of {steps}")
            ctx.logger.info("step done", extra={"step": step})
        return {"steps_completed": steps}

    @TaskRegistry.register("fan_out", tags=["demo", "injection"])
    async def fan_out(scheduler: JobScheduler, names: list[str]) -> dict[str, list[str]]:
        """Queue one `greet_user` job per name with the injected scheduler."""
        job_ids = []
        for name in names:
            job = await scheduler.submit("greet_user", {"name": name})
            job_ids.append(job.id)
        return {"job_ids": job_ids}


def _register_failing_tasks() -> None:
    @TaskRegistry.register("failing_task", tags=["demo", "errors"])
    async def failing_task(message: str = "Something went wrong") -> dict[str, Any]:
        """Always raises: the job ends `failed` and its artifact holds the traceback."""
        raise ValueError(message)

    @TaskRegistry.register(
        "flaky_task",
        tags=["demo", "errors"],
        retries=2,
        retry_backoff=0.1,
        description="Fails on its first attempt and succeeds on the retry.",
    )
    def flaky_task(ctx: JobContext) -> dict[str, int]:
        """Raise on the first attempt; the `retries` option runs it again."""
        if ctx.attempt < 2:
            raise ConnectionError(f"attempt {ctx.attempt} hit a transient error")
        return {"succeeded_on_attempt": ctx.attempt}


def register_tasks() -> None:
    """Register every task of this example."""
    _register_simple_tasks()
    _register_parameterised_tasks()
    _register_injected_tasks()
    _register_failing_tasks()


def build_app(settings: Settings | None = None) -> FastAPI:
    """The example service; settings default to the `TASKEXEC_*` environment."""
    return (
        ServiceBuilder(info=ServiceInfo(display_name="Task Service"), settings=settings)
        .with_health()
        .with_jobs(max_concurrency=5)
        .with_tasks()
        .build()
    )


if not TaskRegistry.has("greet_user"):
    register_tasks()

app = build_app()
