"""Jobs written straight into the table, for the dashboard's query tests; the CSRF token of
a dashboard page, for its action tests."""

import re
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import insert

from app.db.base import table_of
from app.db.database import Database
from app.jobs.models import Job
from app.ui.queries import ulid_floor

UiClient = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


def job_row(
    n: int,
    created: datetime,
    *,
    task: str = "t",
    status: str = "completed",
    seconds: float | None = 1.0,
    worker: str | None = None,
    **columns: Any,
) -> dict[str, Any]:
    """A job made at `created` (its id is a ULID of that time), numbered `n` within it;
    `columns` sets any other column (`parent_id`, `root_id`, `schedule_id`, ...)."""
    started = created if status != "pending" else None
    finished = (
        created + timedelta(seconds=seconds)
        if status in ("completed", "failed", "canceled") and seconds is not None
        else None
    )
    return {
        "id": ulid_floor(created)[:10] + f"{n:016d}",
        "task_name": task,
        "status": status,
        "params": {"n": n},
        "priority": 0,
        "run_at": created,
        "created_at": created,
        "started_at": started,
        "finished_at": finished,
        "attempts": 0 if status == "pending" else 1,
        "max_attempts": 1,
        "error": {"type": "ValueError", "message": "bad"} if status == "failed" else None,
        "worker_id": worker,
        "event_seq": 0,
        **columns,
    }


async def insert_jobs(database: Database, rows: list[dict[str, Any]]) -> None:
    async with database.transaction() as session:
        await session.execute(insert(table_of(Job)), rows)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


async def token(client: httpx.AsyncClient, path: str = "/ui/tasks/add") -> str:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    return csrf_of(response.text)
