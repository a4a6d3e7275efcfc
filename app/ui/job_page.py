"""One job's page, its outcome fragment, and its live stream for htmx.

The stream is the job's `$stream` (the same events, numbered the same way, resumable with
`Last-Event-ID`) rendered as HTML fragments for htmx's SSE extension, and authorized by the
dashboard session, so no API key ever reaches the browser.
"""

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent
from starlette.responses import Response

from app.core.clock import ULID_PATTERN
from app.core.deps import DatabaseDep, SettingsDep, get_scheduler
from app.core.settings import Settings
from app.core.tracebacks import redact_run_record
from app.jobs.live import stream_events
from app.jobs.models import Job, JobStatus
from app.jobs.scheduler import JobScheduler
from app.jobs.schemas import JobEventRead
from app.ui import queries
from app.ui.pages import LOG_TAIL, SessionDep
from app.ui.render import render, templates_of

router = APIRouter(prefix="/ui/jobs", include_in_schema=False)

JobId = Annotated[str, Path(pattern=ULID_PATTERN)]
Scheduler = Annotated[JobScheduler, Depends(get_scheduler)]
STATUS_EVENTS = {
    "started",
    "cancel_requested",
    "retrying",
    "requeued",
    "released",
    "completed",
    "failed",
    "canceled",
}


def _missing(request: Request, session: Any, job_id: str) -> Response:
    return render(
        request,
        session,
        "error.html",
        {"title": "No such job", "message": f"There is no job {job_id} (it may be deleted)."},
        status_code=404,
    )


def _view_context(view: queries.JobView, settings: Settings) -> dict[str, Any]:
    record = view.run_record
    if not settings.expose_traceback_paths:
        record = redact_run_record(record)
    error = record.get("error") if isinstance(record, dict) else None
    return {
        "job": view.job,
        "terminal": JobStatus(view.job.status).is_terminal,
        "attempts": view.attempts,
        "timeline": view.timeline,
        "logs": view.logs,
        "artifacts": view.artifacts,
        "record": record,
        "flow": view.flow,
        "run_error": error,
        "page": "jobs",
    }


@router.get("/{job_id}")
async def show_job(
    request: Request,
    job_id: JobId,
    session: SessionDep,
    database: DatabaseDep,
    settings: SettingsDep,
) -> Response:
    async with database.read_session() as db:
        view = await queries.job_view(db, job_id.upper(), log_tail=LOG_TAIL)
    if view is None:
        return _missing(request, session, job_id)
    return render(request, session, "job.html", _view_context(view, settings))


@router.get("/{job_id}/outcome")
async def show_job_outcome(
    request: Request,
    job_id: JobId,
    session: SessionDep,
    database: DatabaseDep,
    settings: SettingsDep,
    part: Annotated[Literal["outcome", "actions", "facts", "flow"], Query()] = "outcome",
) -> Response:
    """A part of the page that changes as the job runs: its facts, actions, flow, or outcome
    (result, attempts, artifacts)."""
    async with database.read_session() as db:
        view = await queries.job_view(db, job_id.upper(), log_tail=0)
    if view is None:
        return _missing(request, session, job_id)
    return render(request, session, f"_job_{part}.html", _view_context(view, settings))


@router.get("/{job_id}/stream", response_class=EventSourceResponse)
async def stream_job_page(
    request: Request,
    job_id: JobId,
    session: SessionDep,
    database: DatabaseDep,
    scheduler: Scheduler,
    after: Annotated[int, Query(ge=0)] = 0,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None,
) -> AsyncIterator[ServerSentEvent]:
    """The job's events as HTML fragments: `status`, `progress`, `log`, `timeline`, `flow`
    (a child started or finished: the flow panel reloads), and a final `end` (after the
    terminal event, or when the job is gone)."""
    start = int(last_event_id) if last_event_id and last_event_id.isdigit() else after
    templates = templates_of(request)
    fragment = templates.get_template("_job_event.html").module
    async for event in stream_events(database, scheduler.bus, job_id.upper(), start):
        for name, html in await _fragments(event, fragment, database, job_id.upper()):
            yield ServerSentEvent(raw_data=html.strip(), event=name, id=str(event.seq))
    yield ServerSentEvent(raw_data="", event="end")


async def _fragments(
    event: JobEventRead, fragment: Any, database: Any, job_id: str
) -> list[tuple[str, str]]:
    if event.type in ("log", "log_truncated"):
        return [("log", str(fragment.log_line(event)))]
    if event.type == "progress":
        data = event.data
        return [("progress", str(fragment.progress_bar(data.get("fraction"), data.get("message"))))]
    if event.type in queries.CHILD_TYPES:
        return [("flow", "")]
    out = [("timeline", str(fragment.timeline_item(event)))]
    if event.type in STATUS_EVENTS:
        async with database.read_session() as db:
            job = await db.get(Job, job_id)
        if job is not None:
            out.append(("status", str(fragment.status_badge(job.status))))
    return out
