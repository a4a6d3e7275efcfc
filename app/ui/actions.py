"""The dashboard's actions: run a task, cancel, run again, delete. Each is a CSRF-checked POST
that goes through `JobScheduler` (the same validation and rules as the REST API).

An htmx request gets `HX-Redirect` to the page to show next; a plain form post gets a 303.
Bad params come back as the form's error list (400), other refusals as problem+json.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from starlette.responses import RedirectResponse, Response

from app.core.clock import ULID_PATTERN
from app.core.deps import get_scheduler
from app.core.errors import NotFoundError, ValidationFailedError
from app.jobs.scheduler import JobScheduler
from app.tasks.registry import TASK_NAME_RE, TaskRegistry
from app.ui.forms import form_fields, read_params
from app.ui.render import render
from app.ui.session import Session, checked_session

router = APIRouter(prefix="/ui", include_in_schema=False)

CheckedSession = Annotated[Session, Depends(checked_session)]
Scheduler = Annotated[JobScheduler, Depends(get_scheduler)]
JobId = Annotated[str, Path(pattern=ULID_PATTERN)]
TaskName = Annotated[str, Path(pattern=TASK_NAME_RE.pattern, max_length=200)]
FORM_FIELDS_MAX = 200


def go_to(request: Request, url: str) -> Response:
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


@router.post("/tasks/{name}/run")
async def run_task(
    request: Request, name: TaskName, session: CheckedSession, scheduler: Scheduler
) -> Response:
    definition = TaskRegistry.find(name)
    if definition is None:
        raise NotFoundError(f"Task {name!r} is not registered.")
    form = await request.form(max_fields=FORM_FIELDS_MAX, max_files=0)
    values = {key: value for key, value in form.items() if isinstance(value, str)}
    params, errors = read_params(form_fields(definition.info().parameters_schema), values)
    if not errors:
        try:
            job = await scheduler.submit(name, params)
        except ValidationFailedError as exc:
            errors = exc.errors or [{"loc": ["params"], "msg": exc.detail}]
        else:
            return go_to(request, f"/ui/jobs/{job.id}")
    return render(request, session, "_run_errors.html", {"errors": errors}, status_code=400)


@router.post("/jobs/{job_id}/cancel")
async def cancel_job_action(
    request: Request, job_id: JobId, session: CheckedSession, scheduler: Scheduler
) -> Response:
    await scheduler.cancel(job_id.upper())
    return go_to(request, f"/ui/jobs/{job_id.upper()}")


@router.post("/jobs/{job_id}/rerun")
async def rerun_job(
    request: Request, job_id: JobId, session: CheckedSession, scheduler: Scheduler
) -> Response:
    """Queue the same task with the same params as a new job."""
    old = await scheduler.get(job_id.upper())
    job = await scheduler.submit(old.task_name, old.params)
    return go_to(request, f"/ui/jobs/{job.id}")


@router.post("/jobs/{job_id}/delete")
async def delete_job_action(
    request: Request, job_id: JobId, session: CheckedSession, scheduler: Scheduler
) -> Response:
    await scheduler.delete(job_id.upper())
    return go_to(request, "/ui/jobs")
