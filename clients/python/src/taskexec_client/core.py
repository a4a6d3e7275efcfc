"""Every client operation once, as a flow (see `protocol.py`); `Client` and `AsyncClient` run
these same flows, so both have the same behaviour by construction."""

import re
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, TypedDict, Unpack, cast
from urllib.parse import quote

from taskexec_client.config import RetryPolicy
from taskexec_client.errors import BadRequest, JobCanceled, JobFailed, JobNotFinished, WaitTimeout
from taskexec_client.models import Artifact, BatchItem, Job, JobEvent, JobPage, LogLine, TaskInfo
from taskexec_client.protocol import Call, Flow, Stream, send
from taskexec_client.streams import follow_events, log_lines

API = "/api/v1"
LOG_PAGE = 500
# "wait may be at most 10 seconds (TASKEXEC_MAX_WAIT_SECONDS)": the server's cap on one wait.
_WAIT_CAP = re.compile(r"wait may be at most ([0-9.]+) seconds")


class JobOptions(TypedDict, total=False):
    """Options of one job, overriding the task's defaults (the server's `$execute` fields)."""

    priority: int
    delay: float
    run_at: datetime | str
    timeout: float
    retries: int


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


def _segment(value: str) -> str:
    return quote(value, safe="")


def _options_json(options: JobOptions) -> dict[str, Any]:
    body: dict[str, Any] = {k: v for k, v in options.items() if v is not None}
    run_at = body.get("run_at")
    if isinstance(run_at, datetime):
        body["run_at"] = run_at.isoformat()
    return body


def _seconds(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") or "0"


class Core:
    """The operations, as flows. `wait_round` is the longest single `?wait=` (the server caps
    it at TASKEXEC_MAX_WAIT_SECONDS, 60 s by default; a lower cap is learnt from its 400)."""

    def __init__(
        self, policy: RetryPolicy, *, wait_round: float = 30.0, stream_read_timeout: float = 45.0
    ) -> None:
        self.policy = policy
        self.wait_round = wait_round
        self.stream_read_timeout = stream_read_timeout

    def _json(self, call: Call) -> Flow[Any]:
        response = yield from send(call, self.policy)
        return response.json()

    def tasks(self, tags: Iterable[str] | None = None) -> Flow[list[TaskInfo]]:
        params = {"tags": ",".join(tags)} if tags else None
        data = yield from self._json(Call("GET", f"{API}/tasks", params=params))
        return [TaskInfo.from_json(item) for item in data]

    def task(self, name: str) -> Flow[TaskInfo]:
        data = yield from self._json(Call("GET", f"{API}/tasks/{_segment(name)}"))
        return TaskInfo.from_json(data)

    def submit_call(
        self,
        name: str,
        params: Mapping[str, Any] | None,
        idempotency_key: str | None,
        options: JobOptions,
    ) -> Call:
        """The `$execute` request. Under an idempotency key (one is made when none is given)
        a repeat returns the same job, so the request may be retried like a read."""
        return Call(
            "POST",
            f"{API}/tasks/{_segment(name)}/$execute",
            json={"params": dict(params or {}), **_options_json(options)},
            headers={"Idempotency-Key": idempotency_key or new_idempotency_key()},
        )

    def submit_id(
        self,
        name: str,
        params: Mapping[str, Any] | None,
        idempotency_key: str | None,
        options: JobOptions,
    ) -> Flow[str]:
        data = yield from self._json(self.submit_call(name, params, idempotency_key, options))
        return str(data["job_id"])

    def submit(
        self,
        name: str,
        params: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        **options: Unpack[JobOptions],
    ) -> Flow[Job]:
        job_id = yield from self.submit_id(name, params, idempotency_key, options)
        return (yield from self.get(job_id))

    def submit_many_call(
        self, name: str, items: Iterable[Mapping[str, Any] | BatchItem], options: JobOptions
    ) -> Call:
        """The `$execute-many` request; every item gets its own idempotency key."""
        shared = _options_json(options)
        body_items = []
        for item in items:
            if not isinstance(item, BatchItem):
                item = BatchItem(params=dict(item))
            body_items.append(
                {
                    "params": dict(item.params),
                    **shared,
                    **_options_json(cast(JobOptions, item.options)),
                    "idempotency_key": item.idempotency_key or new_idempotency_key(),
                }
            )
        return Call(
            "POST", f"{API}/tasks/{_segment(name)}/$execute-many", json={"items": body_items}
        )

    def submit_many(
        self,
        name: str,
        items: Iterable[Mapping[str, Any] | BatchItem],
        **options: Unpack[JobOptions],
    ) -> Flow[list[str]]:
        data = yield from self._json(self.submit_many_call(name, items, options))
        return [str(job_id) for job_id in data["job_ids"]]

    def get(self, job_id: str) -> Flow[Job]:
        data = yield from self._json(Call("GET", f"{API}/jobs/{_segment(job_id)}"))
        return Job.from_json(data)

    def jobs(
        self,
        *,
        status: str | None = None,
        task: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Flow[JobPage]:
        params = {"limit": str(limit), "offset": str(offset)}
        if status:
            params["status"] = status
        if task:
            params["task"] = task
        data = yield from self._json(Call("GET", f"{API}/jobs", params=params))
        return JobPage(
            items=[Job.from_json(item) for item in data["items"]],
            total=int(data["total"]),
            limit=int(data["limit"]),
            offset=int(data["offset"]),
        )

    def wait(self, job_id: str, timeout: float | None = None) -> Flow[Job]:
        """Long-poll with `?wait=` in rounds until the job is finished or `timeout` passes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        round_seconds = self.wait_round
        path = f"{API}/jobs/{_segment(job_id)}"
        while True:
            left = round_seconds if deadline is None else deadline - time.monotonic()
            seconds = max(0.0, min(round_seconds, left))
            call = Call("GET", path, params={"wait": _seconds(seconds)}, extra_read=seconds)
            try:
                data = yield from self._json(call)
            except BadRequest as exc:
                cap = _WAIT_CAP.search(exc.detail)
                if cap is None or float(cap.group(1)) >= round_seconds:
                    raise
                round_seconds = float(cap.group(1))
                continue
            job = Job.from_json(data)
            if job.finished:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(job, timeout or 0.0)

    def outcome(self, job: Job) -> Flow[Any]:
        """A finished job's result, or `JobFailed` / `JobCanceled` with the remote error."""
        if not job.finished:
            raise JobNotFinished(job)
        record: dict[str, Any] = {}
        if job.result is not None:
            artifact = yield from self.artifact(job.result)
            if isinstance(artifact.data, dict):
                record = artifact.data
        if job.status == "completed":
            return record.get("result")
        error = record.get("error")
        error = error if isinstance(error, dict) else {}
        kind = JobCanceled if job.status == "canceled" else JobFailed
        raise kind(
            job,
            str(error.get("type") or (job.error.type if job.error else job.status)),
            str(error.get("message") or (job.error.message if job.error else "")),
            error.get("traceback"),
        )

    def result(self, job_id: str) -> Flow[Any]:
        job = yield from self.get(job_id)
        return (yield from self.outcome(job))

    def run(
        self,
        name: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        idempotency_key: str | None = None,
        options: JobOptions | None = None,
    ) -> Flow[Any]:
        job_id = yield from self.submit_id(name, params, idempotency_key, options or JobOptions())
        job = yield from self.wait(job_id, timeout)
        return (yield from self.outcome(job))

    def cancel(self, job_id: str) -> Flow[Job]:
        call = Call("POST", f"{API}/jobs/{_segment(job_id)}/$cancel", retry="unsent")
        data = yield from self._json(call)
        return Job.from_json(data)

    def artifact(self, artifact_id: str) -> Flow[Artifact]:
        data = yield from self._json(Call("GET", f"{API}/artifacts/{_segment(artifact_id)}"))
        return Artifact.from_json(data)

    def events(self, job_id: str, after: int | None = None) -> Stream[JobEvent]:
        return follow_events(
            f"{API}/jobs/{_segment(job_id)}", after or 0, self.policy, self.stream_read_timeout
        )

    def logs(self, job_id: str, follow: bool = False) -> Stream[LogLine]:
        if follow:
            return log_lines(self.events(job_id))
        return self._log_pages(job_id)

    def _log_pages(self, job_id: str) -> Stream[LogLine]:
        offset = 0
        while True:
            params = {"limit": str(LOG_PAGE), "offset": str(offset)}
            call = Call("GET", f"{API}/jobs/{_segment(job_id)}/logs", params=params)
            page = yield from self._json(call)
            for item in page["items"]:
                yield LogLine.from_json(item)
            offset += len(page["items"])
            if not page["items"] or offset >= int(page["total"]):
                return
