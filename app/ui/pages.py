"""The dashboard's pages (GET only). Lists refresh themselves by htmx polling of the same URL:
a request whose `HX-Target` names the live region gets only that region back."""

import re
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response

from app.artifacts.models import Artifact
from app.core.clock import ULID_PATTERN
from app.core.deps import DatabaseDep, SettingsDep
from app.core.errors import BadRequestError
from app.core.tracebacks import redact_run_record
from app.jobs.models import JobStatus
from app.tasks.registry import TASK_NAME_RE, TaskRegistry
from app.ui import queries, stats
from app.ui.forms import form_fields
from app.ui.render import render
from app.ui.session import Session, current_session

router = APIRouter(prefix="/ui", include_in_schema=False)

SessionDep = Annotated[Session, Depends(current_session)]
OVERVIEW_COUNT_CAP = 10_000
TASK_COUNT_CAP = 10_000
DURATION_SAMPLE = 1_000
# The task list shows every task at once: smaller caps keep it one page of index walks.
TASK_LIST_COUNT_CAP = 1_000
TASK_LIST_SAMPLE = 200
LOG_TAIL = 200
PAGE_SIZES = (25, 50, 100, 200)
Text = Annotated[str | None, Query(max_length=200)]


def live_region(request: Request, region: str) -> bool:
    """Whether this is a live region's refresh (htmx polling the page's own URL)."""
    return request.headers.get("hx-target") == region


@router.get("")
async def show_overview(
    request: Request, session: SessionDep, database: DatabaseDep, settings: SettingsDep
) -> Response:
    now = datetime.now(UTC)
    async with database.read_session() as db:
        data = await queries.overview(
            db, now, count_cap=OVERVIEW_COUNT_CAP, worker_timeout=settings.worker_timeout
        )
    template = "_overview.html" if live_region(request, "overview-live") else "overview.html"
    return render(request, session, template, {"o": data, "page": "overview"})


def _moment(value: str | None, name: str) -> datetime | None:
    """A time from the filter form (`datetime-local` is naive: read as UTC)."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequestError(f"{name} must be a date and time like 2026-01-31T13:45.") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _cursor(value: str | None, name: str) -> str | None:
    """A job or schedule id from the query string (any case), upper-cased."""
    if not value:
        return None
    value = value.strip()
    if not re.fullmatch(ULID_PATTERN, value):
        kind = "a schedule id" if name == "schedule" else "a job id"
        raise BadRequestError(f"{name} must be {kind} (26 characters of Crockford base32).")
    return value.upper()


@router.get("/jobs")
async def list_jobs_page(
    request: Request,
    session: SessionDep,
    database: DatabaseDep,
    status: Text = None,
    task: Text = None,
    tag: Text = None,
    created_from: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    created_to: Annotated[str | None, Query(alias="to", max_length=40)] = None,
    parent: Text = None,
    root: Text = None,
    schedule: Text = None,
    before: Text = None,
    after: Text = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Response:
    if status and status not in {s.value for s in JobStatus}:
        raise BadRequestError(f"status must be one of {', '.join(s.value for s in JobStatus)}.")
    names: list[str] | None = None
    if task:
        names = [task]
    if tag:
        tagged = set(TaskRegistry.list_by_tags([tag]))
        names = sorted(tagged if names is None else tagged.intersection(names))
    where = queries.JobFilter(
        status=status or None,
        task_names=names,
        created_from=_moment(created_from, "from"),
        created_to=_moment(created_to, "to"),
        parent_id=_cursor(parent, "parent"),
        root_id=_cursor(root, "root"),
        schedule_id=_cursor(schedule, "schedule"),
    )
    async with database.read_session() as db:
        page = await queries.job_page(
            db,
            where,
            limit=limit,
            before=_cursor(before, "before"),
            after=_cursor(after, "after"),
        )
    filters = {
        "status": status or "",
        "task": task or "",
        "tag": tag or "",
        "from": created_from or "",
        "to": created_to or "",
        "parent": where.parent_id or "",
        "root": where.root_id or "",
        "schedule": where.schedule_id or "",
    }
    context = {
        "jobs": page,
        "filters": filters,
        "limit": limit,
        "query": urlencode({**{k: v for k, v in filters.items() if v}, "limit": limit}),
        "statuses": [s.value for s in JobStatus],
        "task_names": TaskRegistry.list_all(),
        "tags": _all_tags(),
        "page": "jobs",
    }
    template = "_job_rows.html" if live_region(request, "job-rows") else "jobs.html"
    return render(request, session, template, context)


def _all_tags() -> list[str]:
    names = TaskRegistry.list_all()
    return sorted({tag for name in names for tag in TaskRegistry.get_info(name).tags})


@router.get("/tasks")
async def list_tasks_page(request: Request, session: SessionDep, database: DatabaseDep) -> Response:
    tasks = [TaskRegistry.get_info(name) for name in TaskRegistry.list_all()]
    async with database.read_session() as db:
        figures = await stats.tasks_stats(
            db,
            [task.name for task in tasks],
            count_cap=TASK_LIST_COUNT_CAP,
            sample=TASK_LIST_SAMPLE,
        )
    return render(
        request,
        session,
        "tasks.html",
        {
            "tasks": tasks,
            "stats": figures,
            "sample": TASK_LIST_SAMPLE,
            "cap": TASK_LIST_COUNT_CAP,
            "page": "tasks",
        },
    )


@router.get("/tasks/{name}")
async def show_task(
    request: Request,
    session: SessionDep,
    database: DatabaseDep,
    name: Annotated[str, Path(pattern=TASK_NAME_RE.pattern, max_length=200)],
) -> Response:
    definition = TaskRegistry.find(name)
    if definition is None:
        return render(
            request,
            session,
            "error.html",
            {"title": "Unknown task", "message": f"No task is registered as {name!r}."},
            status_code=404,
        )
    info = definition.info()
    async with database.read_session() as db:
        figures = await stats.task_stats(db, name, count_cap=TASK_COUNT_CAP, sample=DURATION_SAMPLE)
    context = {
        "task": info,
        "stats": figures,
        "fields": form_fields(info.parameters_schema),
        "page": "tasks",
    }
    return render(request, session, "task.html", context)


@router.get("/artifacts/{artifact_id}")
async def show_artifact(
    request: Request,
    session: SessionDep,
    database: DatabaseDep,
    settings: SettingsDep,
    artifact_id: Annotated[str, Path(pattern=ULID_PATTERN)],
) -> Response:
    async with database.read_session() as db:
        artifact = await db.get(Artifact, artifact_id.upper())
    if artifact is None:
        context = {"title": "No such artifact", "message": f"There is no artifact {artifact_id}."}
        return render(request, session, "error.html", context, status_code=404)
    data = artifact.data if settings.expose_traceback_paths else redact_run_record(artifact.data)
    return render(
        request, session, "artifact.html", {"artifact": artifact, "data": data, "page": "jobs"}
    )
