"""The schedules page and its actions: pause, resume, fire now, delete.

Actions are CSRF-checked POSTs that go through `ScheduleManager`, so they follow the same
rules as `/api/v1/schedules` (a schedule defined in code can be paused, not deleted: 409).
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response

from app.core.clock import ULID_PATTERN
from app.core.deps import DatabaseDep
from app.schedules.manager import ScheduleManager
from app.schedules.router import get_schedules
from app.schedules.schemas import ScheduleUpdate
from app.tasks.registry import TASK_NAME_RE
from app.ui.actions import CheckedSession, go_to
from app.ui.pages import SessionDep, live_region
from app.ui.render import render
from app.ui.schedule_view import schedule_page

router = APIRouter(prefix="/ui/schedules", include_in_schema=False)

Schedules = Annotated[ScheduleManager, Depends(get_schedules)]
ScheduleId = Annotated[str, Path(pattern=ULID_PATTERN)]
PAGE_SIZE = 50
MAX_OFFSET = 1_000_000


@router.get("")
async def list_schedules_page(
    request: Request,
    session: SessionDep,
    database: DatabaseDep,
    task: Annotated[str | None, Query(max_length=200, pattern=TASK_NAME_RE.pattern)] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> Response:
    async with database.read_session() as db:
        page = await schedule_page(db, task_name=task or None, limit=PAGE_SIZE, offset=offset)
    context = {"schedules": page, "task": task or "", "page": "schedules"}
    live = live_region(request, "schedule-rows")
    return render(request, session, "_schedule_rows.html" if live else "schedules.html", context)


@router.post("/{schedule_id}/pause")
async def pause_schedule(
    request: Request, schedule_id: ScheduleId, session: CheckedSession, schedules: Schedules
) -> Response:
    await schedules.update(schedule_id.upper(), ScheduleUpdate(enabled=False))
    return go_to(request, _back(request))


@router.post("/{schedule_id}/resume")
async def resume_schedule(
    request: Request, schedule_id: ScheduleId, session: CheckedSession, schedules: Schedules
) -> Response:
    """Resume a paused schedule; its fire times start again from now."""
    await schedules.update(schedule_id.upper(), ScheduleUpdate(enabled=True))
    return go_to(request, _back(request))


@router.post("/{schedule_id}/trigger")
async def trigger_schedule_action(
    request: Request, schedule_id: ScheduleId, session: CheckedSession, schedules: Schedules
) -> Response:
    """Fire the schedule once now; the page shows the job it made as its last fire."""
    await schedules.trigger(schedule_id.upper())
    return go_to(request, _back(request))


@router.post("/{schedule_id}/delete")
async def delete_schedule_action(
    request: Request, schedule_id: ScheduleId, session: CheckedSession, schedules: Schedules
) -> Response:
    await schedules.delete(schedule_id.upper())
    return go_to(request, _back(request))


def _back(request: Request) -> str:
    """The schedules page the action came from (its filter and page), or the first page."""
    current = request.headers.get("hx-current-url", "")
    marker = "/ui/schedules"
    if marker in current:
        rest = current[current.index(marker) + len(marker) :]
        if rest == "" or (rest.startswith("?") and "#" not in rest and "\\" not in rest):
            return marker + rest
    return marker
