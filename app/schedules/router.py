"""`/api/v1/schedules`: tasks that run by themselves, on a cron expression or an interval."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from app.core.clock import ULID_PATTERN
from app.core.deps import PageDep
from app.core.errors import ServiceUnavailableError
from app.core.pagination import Page
from app.schedules.manager import ScheduleManager
from app.schedules.schemas import ScheduleCreate, ScheduleRead, ScheduleUpdate, TriggerAccepted

router = APIRouter(prefix="/api/v1/schedules", tags=["Schedules"])

ScheduleId = Annotated[str, Path(pattern=ULID_PATTERN, description="The schedule's ULID.")]


async def get_schedules(request: Request) -> ScheduleManager:
    manager: ScheduleManager | None = getattr(request.app.state, "schedules", None)
    if manager is None:
        raise ServiceUnavailableError("Schedules are not available in this service.")
    return manager


Schedules = Annotated[ScheduleManager, Depends(get_schedules)]


@router.get("", response_model=Page[ScheduleRead])
async def list_schedules(
    schedules: Schedules,
    page: PageDep,
    task: Annotated[str | None, Query(max_length=200)] = None,
) -> Page[ScheduleRead]:
    """Schedules, newest first, optionally of one task."""
    items, total = await schedules.list_page(task_name=task, limit=page.limit, offset=page.offset)
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ScheduleRead,
    responses={
        400: {"description": "Bad cron, timezone, interval or params; nothing is stored."},
        404: {"description": "Unknown task."},
        413: {"description": "Body over the size limit."},
    },
)
async def create_schedule(
    body: ScheduleCreate, schedules: Schedules, response: Response
) -> ScheduleRead:
    """Create a schedule. Params are validated against the task like `$execute`."""
    created = await schedules.create(body)
    response.headers["Location"] = f"/api/v1/schedules/{created.id}"
    return created


@router.get(
    "/{schedule_id}",
    response_model=ScheduleRead,
    responses={404: {"description": "Unknown schedule."}},
)
async def get_schedule(schedule_id: ScheduleId, schedules: Schedules) -> ScheduleRead:
    """A schedule with its next few fire times."""
    return await schedules.get(schedule_id.upper())


@router.patch(
    "/{schedule_id}",
    response_model=ScheduleRead,
    responses={
        400: {"description": "Bad cron, timezone, interval or params; nothing is changed."},
        404: {"description": "Unknown schedule."},
        409: {"description": "Defined in code: only `enabled` can change."},
    },
)
async def update_schedule(
    schedule_id: ScheduleId, body: ScheduleUpdate, schedules: Schedules
) -> ScheduleRead:
    """Change a schedule; `{"enabled": false}` pauses it and `{"enabled": true}` resumes it."""
    return await schedules.update(schedule_id.upper(), body)


@router.delete(
    "/{schedule_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "Unknown schedule."}, 409: {"description": "Defined in code."}},
)
async def delete_schedule(schedule_id: ScheduleId, schedules: Schedules) -> None:
    """Delete a schedule. The jobs it made are kept (they still name it in `schedule_id`)."""
    await schedules.delete(schedule_id.upper())


@router.post(
    "/{schedule_id}/$trigger",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TriggerAccepted,
    responses={404: {"description": "Unknown schedule, or its task is not registered."}},
)
async def trigger_schedule(
    schedule_id: ScheduleId, schedules: Schedules, response: Response
) -> TriggerAccepted:
    """Fire the schedule now, once (paused or not); the job's `scheduled_for` is now."""
    accepted = await schedules.trigger(schedule_id.upper())
    response.headers["Location"] = f"/api/v1/jobs/{accepted.job_id}"
    return accepted
