"""`/api/v1/workers`: the worker processes that ran recently, alive or not."""

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from app.core.clock import utcnow
from app.core.deps import ListSessionDep, PageDep, SettingsDep
from app.core.pagination import Page
from app.workers.repository import WorkerRepository
from app.workers.schemas import WorkerRead

router = APIRouter(prefix="/api/v1/workers", tags=["Workers"])


@router.get(
    "",
    response_model=Page[WorkerRead],
    responses={400: {"description": "Bad `alive`, `limit` or `offset` (problem+json)."}},
)
async def list_workers(
    session: ListSessionDep,
    settings: SettingsDep,
    page: PageDep,
    alive: Annotated[
        bool | None,
        Query(description="Only live workers (`true`) or only stopped and expired (`false`)."),
    ] = None,
) -> Page[WorkerRead]:
    """Workers, newest first: each worker process registers at start, refreshes its row with
    every heartbeat and marks it stopped when it stops. One silent for the worker timeout is
    dead; its jobs are recovered at once and it is listed as `expired` for a day."""
    cutoff = utcnow() - timedelta(seconds=settings.worker_timeout)
    records, total = await WorkerRepository(session).list_page(
        alive=alive, cutoff=cutoff, limit=page.limit, offset=page.offset
    )
    items = [WorkerRead.from_record(record, cutoff) for record in records]
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)
