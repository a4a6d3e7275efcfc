"""`/api/v1/tasks`: discover tasks and run them."""

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Response, status

from app.core.deps import get_scheduler
from app.core.errors import BadRequestError, NotFoundError
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
        409: {"description": "Idempotency key already used with other params."},
        413: {"description": "Body over the size limit."},
    },
)
async def execute_task(
    name: TaskName,
    response: Response,
    scheduler: Scheduler,
    body: Annotated[ExecuteRequest | None, Body()] = None,
    idempotency_key: Annotated[
        str | None, Header(min_length=1, max_length=200, alias="Idempotency-Key")
    ] = None,
) -> ExecuteAccepted:
    """Validate params against the task's signature and queue a job.

    Returns 202 with the job id and a `Location` header pointing at the job. With an
    `Idempotency-Key` header (or `idempotency_key` field), a repeat returns the same job
    (`Idempotent-Replayed: true`) while it exists; the key with other params is a 409.
    """
    _definition(name)
    request = body or ExecuteRequest()
    key = _one_key(idempotency_key, request.idempotency_key)
    job, created = await scheduler.enqueue(
        name,
        request.params,
        priority=request.priority,
        delay=request.delay,
        run_at=request.run_at,
        timeout=request.timeout,
        retries=request.retries,
        idempotency_key=key,
    )
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return ExecuteAccepted(
        job_id=job.id, message=f"Task '{name}' submitted for execution. Job ID: {job.id}"
    )


def _one_key(header: str | None, field: str | None) -> str | None:
    if header is not None and field is not None and header != field:
        raise BadRequestError("The Idempotency-Key header and idempotency_key field differ.")
    return header if header is not None else field
