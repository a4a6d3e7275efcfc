"""`/api/v1/tasks`: discover tasks and run them."""

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Response, status

from app.core.deps import get_scheduler
from app.core.errors import NotFoundError
from app.jobs.scheduler import JobScheduler
from app.tasks.registry import TASK_NAME_RE, TaskDefinition, TaskRegistry
from app.tasks.schemas import ExecuteAccepted, ExecuteRequest, TaskInfo

router = APIRouter(prefix="/api/v1/tasks", tags=["Tasks"])

TaskName = Annotated[str, Path(pattern=TASK_NAME_RE.pattern, max_length=200)]
Scheduler = Annotated[JobScheduler, Depends(get_scheduler)]


def _definition(name: str) -> TaskDefinition:
    definition = TaskRegistry.find(name)
    if definition is None:
        raise NotFoundError(f"Task {name!r} is not registered.")
    return definition


@router.get("", response_model=list[TaskInfo])
async def list_tasks(
    tags: Annotated[
        str | None, Query(description="Comma-separated tags; a task must carry all of them.")
    ] = None,
) -> list[TaskInfo]:
    """List registered tasks, sorted by name, optionally only those with every given tag."""
    wanted = [tag.strip() for tag in (tags or "").split(",") if tag.strip()]
    names = TaskRegistry.list_by_tags(wanted) if wanted else TaskRegistry.list_all()
    return [TaskRegistry.get_info(name) for name in names]


@router.get("/{name}", response_model=TaskInfo)
async def get_task(name: TaskName) -> TaskInfo:
    """A task's metadata: docstring, signature, parameters and their JSON Schema, options."""
    return _definition(name).info()


@router.post(
    "/{name}/$execute",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ExecuteAccepted,
    responses={
        400: {"description": "Missing, unknown or wrong-typed params (one entry per problem)."},
        404: {"description": "Unknown task."},
        413: {"description": "Body over the size limit."},
    },
)
async def execute_task(
    name: TaskName,
    response: Response,
    scheduler: Scheduler,
    body: Annotated[ExecuteRequest | None, Body()] = None,
) -> ExecuteAccepted:
    """Validate params against the task's signature and queue a job.

    Returns 202 with the job id and a `Location` header pointing at the job.
    """
    _definition(name)
    job = await scheduler.submit(name, body.params if body else {})
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    return ExecuteAccepted(
        job_id=job.id, message=f"Task '{name}' submitted for execution. Job ID: {job.id}"
    )
