"""`/api/v1/jobs`: follow, cancel and delete jobs."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status

from app.core.clock import ULID_PATTERN
from app.core.deps import PageDep, ReadSessionDep, get_scheduler
from app.core.pagination import Page
from app.jobs.models import JobStatus
from app.jobs.repository import JobRepository
from app.jobs.scheduler import JobScheduler
from app.jobs.schemas import JobDetail, JobRead

router = APIRouter(prefix="/api/v1/jobs", tags=["Jobs"])

JobId = Annotated[str, Path(pattern=ULID_PATTERN, description="The job's ULID.")]
Scheduler = Annotated[JobScheduler, Depends(get_scheduler)]


@router.get("", response_model=Page[JobRead])
async def list_jobs(
    session: ReadSessionDep,
    page: PageDep,
    status_filter: Annotated[JobStatus | None, Query(alias="status")] = None,
    task: Annotated[str | None, Query(max_length=200)] = None,
) -> Page[JobRead]:
    """Jobs, newest first, optionally filtered by status and task name."""
    jobs, total = await JobRepository(session).list_page(
        status=status_filter, task_name=task, limit=page.limit, offset=page.offset
    )
    return Page(
        items=[JobRead.from_job(job) for job in jobs],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/{job_id}", response_model=JobDetail)
async def get_job(job_id: JobId, scheduler: Scheduler) -> JobDetail:
    """A job's state and attempt history; `result` is the id of the artifact of its run."""
    return await scheduler.get_detail(job_id.upper())


@router.post("/{job_id}/$cancel", response_model=JobRead)
async def cancel_job(job_id: JobId, scheduler: Scheduler) -> JobRead:
    """Cancel a pending job now, or ask its worker to stop a running one. 409 if finished."""
    return await scheduler.cancel(job_id.upper())


@router.delete("/{job_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_job(job_id: JobId, scheduler: Scheduler) -> None:
    """Delete a finished job and its artifacts. 409 while it is pending or running."""
    await scheduler.delete(job_id.upper())
