"""`/api/v1/tasks`: discover tasks and run them."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request, Response, status

from app.artifacts.manager import ArtifactManager
from app.artifacts.schemas import shown
from app.core.deps import get_scheduler
from app.core.errors import BadRequestError, NotFoundError, ValidationFailedError
from app.core.inputs import require_json_body
from app.core.settings import Settings
from app.jobs.router import WaitQuery, check_wait
from app.jobs.scheduler import JobScheduler, SubmitOptions
from app.tasks.registry import TASK_NAME_RE, TaskDefinition, TaskRegistry
from app.tasks.schemas import (
    CacheForgotten,
    ExecuteAccepted,
    ExecuteFinished,
    ExecuteManyAccepted,
    ExecuteManyRequest,
    ExecuteRequest,
    TaskInfo,
)

router = APIRouter(prefix="/api/v1/tasks", tags=["Tasks"])

TaskName = Annotated[str, Path(pattern=TASK_NAME_RE.pattern, max_length=200)]
Scheduler = Annotated[JobScheduler, Depends(get_scheduler)]
_UNKNOWN_TASK = {"description": "Unknown task."}


def _definition(name: str) -> TaskDefinition:
    definition = TaskRegistry.find(name)
    if definition is None:
        raise NotFoundError(f"Task {name!r} is not registered.")
    return definition


def _options(item: ExecuteRequest, key: str | None) -> SubmitOptions:
    return SubmitOptions(
        priority=item.priority,
        delay=item.delay,
        run_at=item.run_at,
        timeout=item.timeout,
        retries=item.retries,
        idempotency_key=key,
    )


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


@router.get("/{name}", response_model=TaskInfo, responses={404: {"description": "Unknown task."}})
async def get_task(name: TaskName) -> TaskInfo:
    """A task's metadata: docstring, signature, parameters and their JSON Schema, options."""
    return _definition(name).info()


@router.post(
    "/{name}/$execute",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ExecuteAccepted | ExecuteFinished,
    dependencies=[Depends(require_json_body)],
    responses={
        200: {"description": "Finished within `?wait=`.", "model": ExecuteFinished},
        400: {
            "description": "Missing, unknown or wrong-typed params (one entry per problem), "
            "or a callback_url whose host is not allowed."
        },
        404: {"description": "Unknown task."},
        409: {"description": "Idempotency key already used with other params."},
        413: {"description": "Body over the size limit."},
        415: {"description": "A body that is not `application/json`."},
    },
)
async def execute_task(
    name: TaskName,
    request: Request,
    body: Annotated[ExecuteRequest | None, Body()] = None,
    idempotency_key: Annotated[
        str | None, Header(min_length=1, max_length=200, alias="Idempotency-Key")
    ] = None,
    wait: WaitQuery = None,
) -> Response:
    """Validate params against the task's signature and queue a job.

    Returns 202 with the job id and a `Location` header pointing at the job. With an
    `Idempotency-Key` header (or `idempotency_key` field), a repeat returns the same job
    (`Idempotent-Replayed: true`) while it exists; the key with other params is a 409.
    """
    # The app's objects are read from its state, not through dependencies: this route is the
    # hot path, and each dependency costs a resolution per request.
    _definition(name)
    state = request.app.state
    scheduler: JobScheduler = state.scheduler
    settings: Settings = state.settings
    if wait:
        check_wait(wait, settings)
    options = body or ExecuteRequest()
    key = _one_key(idempotency_key, options.idempotency_key)
    receipt = await scheduler.accept(
        name,
        options.params,
        priority=options.priority,
        delay=options.delay,
        run_at=options.run_at,
        timeout=options.timeout,
        retries=options.retries,
        idempotency_key=key,
        cache=options.cache,
        callback_url=options.callback_url,
        request_id=request.scope.get("state", {}).get("request_id"),
    )
    job_id = receipt.job_id
    headers = {"Location": f"/api/v1/jobs/{job_id}"}
    if not receipt.created and key is not None and receipt.idempotency_key == key:
        headers["Idempotent-Replayed"] = "true"
    elif not receipt.created:
        headers["Taskexec-Cache"] = "joined"
    elif receipt.cached_from is not None:
        headers["Taskexec-Cache"] = "hit"
    message = f"Task '{name}' submitted for execution. Job ID: {job_id}"
    if wait:
        detail = await scheduler.wait(job_id, wait)
        if detail.status.is_terminal:
            artifact = await _artifact(request, detail.result, settings)
            finished = ExecuteFinished(
                job_id=job_id, message=message, job=detail, artifact=artifact
            )
            return _json(finished.model_dump_json().encode(), status.HTTP_200_OK, headers)
    accepted = ExecuteAccepted(job_id=job_id, message=message)
    return _json(accepted.model_dump_json().encode(), status.HTTP_202_ACCEPTED, headers)


@router.post(
    "/{name}/$execute-many",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ExecuteManyAccepted,
    dependencies=[Depends(require_json_body)],
    responses={
        400: {
            "description": "An invalid item (each error names it by index, e.g. "
            "`items.3.params.x`), or more than `TASKEXEC_MAX_BATCH` items; nothing is queued."
        },
        404: {"description": "Unknown task."},
        409: {"description": "An item's idempotency key was already used with other params."},
        413: {"description": "Body over the size limit."},
        415: {"description": "A body that is not `application/json`."},
    },
)
async def execute_task_many(name: TaskName, request: Request, body: ExecuteManyRequest) -> Response:
    """Validate every item against the task's signature and queue one job per item, all in
    one transaction: all or nothing.

    Answers 202 with the job ids in item order. Each item takes the options of `$execute`,
    including `idempotency_key`: an item whose key names an existing job (with the same
    params) returns that job's id instead of queuing another.
    """
    _definition(name)
    scheduler: JobScheduler = request.app.state.scheduler
    settings: Settings = request.app.state.settings
    if len(body.items) > settings.max_batch:
        raise ValidationFailedError(
            f"A batch has at most {settings.max_batch} items (TASKEXEC_MAX_BATCH); "
            f"this one has {len(body.items)}.",
            errors=[
                {
                    "loc": ["body", "items"],
                    "msg": f"at most {settings.max_batch} items",
                    "type": "too_long",
                }
            ],
        )
    unsupported = [
        {
            "loc": ["body", "items", str(index), field],
            "msg": f"{field} is not supported in a batch; use $execute",
            "type": "unsupported",
        }
        for index, item in enumerate(body.items)
        for field in ("cache", "callback_url")
        if getattr(item, field) is not None
    ]
    if unsupported:
        raise ValidationFailedError(
            "Batch items cannot use the result cache or a completion callback; "
            "submit those jobs with $execute.",
            errors=unsupported,
        )
    job_ids = await scheduler.enqueue_many(
        name,
        [(item.params, _options(item, item.idempotency_key)) for item in body.items],
        request_id=request.scope.get("state", {}).get("request_id"),
    )
    return _json(
        ExecuteManyAccepted(job_ids=job_ids).model_dump_json().encode(),
        status.HTTP_202_ACCEPTED,
    )


@router.delete("/{name}/cache", response_model=CacheForgotten, responses={404: _UNKNOWN_TASK})
async def forget_task_cache(name: TaskName, scheduler: Scheduler) -> CacheForgotten:
    """Forget the task's cached results: later requests run it again."""
    _definition(name)
    return CacheForgotten(task_name=name, forgotten=await scheduler.store.forget_cache(name))


async def _artifact(request: Request, artifact_id: str | None, settings: Settings) -> Any:
    if artifact_id is None:
        return None
    manager: ArtifactManager = request.app.state.artifact_manager
    artifact = await manager.get(artifact_id)
    if artifact is None:
        return None
    return shown(artifact, expose_paths=settings.expose_traceback_paths)


def _json(content: bytes, status_code: int, headers: dict[str, str] | None = None) -> Response:
    """The answer as built here: FastAPI passes a `Response` through, so the model is not
    validated and serialised a second time by `response_model`."""
    return Response(content, status_code, headers, media_type="application/json")


def _one_key(header: str | None, field: str | None) -> str | None:
    if header is not None and field is not None and header != field:
        raise BadRequestError("The Idempotency-Key header and idempotency_key field differ.")
    return header if header is not None else field
