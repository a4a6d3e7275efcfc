"""`/api/v1/jobs`: follow, cancel and delete jobs."""

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, status
from fastapi.sse import EventSourceResponse, ServerSentEvent

from app.core.clock import ULID_PATTERN
from app.core.deps import (
    DatabaseDep,
    ListSessionDep,
    PageDep,
    ReadSessionDep,
    SettingsDep,
    get_scheduler,
)
from app.core.errors import BadRequestError
from app.core.inputs import MAX_EVENT_NUMBER, NO_NUL_PATTERN
from app.core.pagination import PAGING_NOTE, Page
from app.core.settings import Settings
from app.jobs.events import EventType
from app.jobs.live import stream_events
from app.jobs.models import JobStatus
from app.jobs.repository import JobRepository
from app.jobs.scheduler import JobScheduler
from app.jobs.schemas import JobDetail, JobEventRead, JobLogRead, JobRead, JobTree
from app.jobs.tree import read_tree

router = APIRouter(prefix="/api/v1/jobs", tags=["Jobs"])

JobId = Annotated[str, Path(pattern=ULID_PATTERN, description="The job's ULID.")]
Scheduler = Annotated[JobScheduler, Depends(get_scheduler)]
WaitQuery = Annotated[
    float | None,
    Query(ge=0, description="Seconds to wait for the job to finish (capped by the server)."),
]
LOG_TYPES = (EventType.LOG.value, EventType.LOG_TRUNCATED.value)
UNKNOWN_JOB: dict[int | str, dict[str, Any]] = {404: {"description": "No job with this id."}}


def check_wait(seconds: float, settings: Settings) -> float:
    if seconds > settings.max_wait_seconds:
        raise BadRequestError(
            f"wait may be at most {settings.max_wait_seconds:g} seconds (TASKEXEC_MAX_WAIT_SECONDS)"
        )
    return seconds


def _event_number(last_event_id: str) -> int:
    if not last_event_id:
        return 0
    try:
        number = int(last_event_id)
    except ValueError:
        number = -1
    if not 0 <= number <= MAX_EVENT_NUMBER:
        raise BadRequestError(
            f"Last-Event-ID must be an event number from 0 to {MAX_EVENT_NUMBER}."
        )
    return number


@router.get(
    "",
    response_model=Page[JobRead],
    description=f"Jobs, newest first, optionally filtered by status and task name. {PAGING_NOTE}",
)
async def list_jobs(
    session: ListSessionDep,
    page: PageDep,
    status_filter: Annotated[JobStatus | None, Query(alias="status")] = None,
    task: Annotated[str | None, Query(max_length=200, pattern=NO_NUL_PATTERN)] = None,
    parent_id: Annotated[
        str | None, Query(pattern=ULID_PATTERN, description="Only the children of this job.")
    ] = None,
) -> Page[JobRead]:
    """Jobs, newest first, optionally filtered by status and task name; with `parent_id`,
    the children of that job in spawn order (the items of a map by index)."""
    jobs, total = await JobRepository(session).list_page(
        status=status_filter,
        task_name=task,
        limit=page.limit,
        offset=page.offset,
        max_bytes=page.max_bytes,
        count_max=page.count_max,
        parent_id=None if parent_id is None else parent_id.upper(),
    )
    return Page(
        items=[JobRead.from_job(job) for job in jobs],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/{job_id}", response_model=JobDetail, responses=UNKNOWN_JOB)
async def get_job(
    job_id: JobId, scheduler: Scheduler, settings: SettingsDep, wait: WaitQuery = None
) -> JobDetail:
    """A job's state and attempt history; `result` is the id of the artifact of its run.

    With `?wait=SECONDS`, answers once the job is finished or the time is up (long poll).
    """
    if wait:
        return await scheduler.wait(job_id.upper(), check_wait(wait, settings))
    return await scheduler.get_detail(job_id.upper())


@router.get(
    "/{job_id}/tree",
    response_model=JobTree,
    responses=UNKNOWN_JOB,
)
async def get_job_tree(job_id: JobId, session: ReadSessionDep, settings: SettingsDep) -> JobTree:
    """The job and every job it spawned, nested (a flow, when asked of its root): status,
    attempts, timings and result artifact per node, at most `TASKEXEC_TREE_MAX_NODES` nodes."""
    return await read_tree(session, job_id.upper(), settings.tree_max_nodes)


@router.get(
    "/{job_id}/logs",
    response_model=Page[JobLogRead],
    responses=UNKNOWN_JOB,
    description=f"Log lines the task wrote while it ran. {PAGING_NOTE}",
)
async def list_job_logs(
    job_id: JobId, session: ListSessionDep, page: PageDep, scheduler: Scheduler
) -> Page[JobLogRead]:
    """Log lines the task wrote while it ran (through `JobContext.logger` or `logging`)."""
    await scheduler.get(job_id.upper())
    events, total = await JobRepository(session).events_page(
        job_id.upper(),
        types=LOG_TYPES,
        limit=page.limit,
        offset=page.offset,
        max_bytes=page.max_bytes,
    )
    return Page(
        items=[JobLogRead.from_event(JobEventRead.model_validate(e)) for e in events],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get(
    "/{job_id}/events",
    response_model=Page[JobEventRead],
    responses=UNKNOWN_JOB,
    description=f"Everything that happened to the job, in order. {PAGING_NOTE}",
)
async def list_job_events(
    job_id: JobId, session: ListSessionDep, page: PageDep, scheduler: Scheduler
) -> Page[JobEventRead]:
    """Everything that happened to the job, in order: state changes, attempts, progress, logs."""
    await scheduler.get(job_id.upper())
    events, total = await JobRepository(session).events_page(
        job_id.upper(), types=None, limit=page.limit, offset=page.offset, max_bytes=page.max_bytes
    )
    return Page(
        items=[JobEventRead.model_validate(e) for e in events],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


async def stream_start(
    job_id: JobId,
    scheduler: Scheduler,
    last_event_id: Annotated[
        str,
        Header(
            alias="Last-Event-ID",
            pattern=r"^[0-9]{0,9}$",
            description="Resume after this event (the `id` of the last event received).",
        ),
    ] = "",
    after: Annotated[
        int | None, Query(ge=0, le=MAX_EVENT_NUMBER, description="Resume after this event.")
    ] = None,
) -> int:
    """Check the job and the resume point before the stream's 200 is sent."""
    await scheduler.get(job_id.upper())
    return after if after is not None else _event_number(last_event_id)


@router.get("/{job_id}/$stream", response_class=EventSourceResponse, responses=UNKNOWN_JOB)
async def stream_job(
    job_id: JobId,
    scheduler: Scheduler,
    database: DatabaseDep,
    settings: SettingsDep,
    start: Annotated[int, Depends(stream_start)],
) -> AsyncIterator[ServerSentEvent]:
    """Server-Sent Events of the job: each event as it happens, from the start or after
    `Last-Event-ID` (or `?after=`), ending after the terminal event. Disconnecting does not
    cancel the job. A client that stops reading is disconnected after
    `TASKEXEC_HTTP_WRITE_TIMEOUT_SECONDS`; it resumes with `Last-Event-ID`."""
    events = stream_events(
        database, scheduler.bus, job_id.upper(), start, max_bytes=settings.page_max_bytes
    )
    async for event in events:
        yield ServerSentEvent(
            id=str(event.seq), event=event.type, data=event.model_dump(mode="json")
        )


@router.post(
    "/{job_id}/$cancel",
    response_model=JobRead,
    responses={**UNKNOWN_JOB, 409: {"description": "The job has already finished."}},
)
async def cancel_job(job_id: JobId, scheduler: Scheduler) -> JobRead:
    """Cancel a pending job now, or ask its worker to stop a running one. 409 if finished."""
    return await scheduler.cancel(job_id.upper())


@router.delete(
    "/{job_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**UNKNOWN_JOB, 409: {"description": "The job is pending or running."}},
)
async def delete_job(job_id: JobId, scheduler: Scheduler) -> None:
    """Delete a finished job and its artifacts. 409 while it is pending or running."""
    await scheduler.delete(job_id.upper())
