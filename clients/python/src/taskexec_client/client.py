"""`Client` (blocking) and `AsyncClient`: the same methods, each running the same flow of
`Core`. tests/client/test_api_surface.py checks that the three stay in step."""

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Self, Unpack

import httpx

from taskexec_client._io import AsyncDriver, SyncDriver
from taskexec_client._version import __version__
from taskexec_client.config import RetryPolicy, resolve_api_key, resolve_url
from taskexec_client.core import Core, JobOptions
from taskexec_client.models import Artifact, BatchItem, Job, JobEvent, JobPage, LogLine, TaskInfo

DEFAULT_TIMEOUT = 10.0


def _headers(api_key: str | None) -> dict[str, str]:
    headers = {"User-Agent": f"taskexec-client/{__version__}", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


class _Base:
    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        timeout: float | httpx.Timeout,
        retry: RetryPolicy | None,
        wait_round: float,
    ) -> None:
        self.base_url = resolve_url(base_url)
        self._headers = _headers(resolve_api_key(api_key))
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._core = Core(retry or RetryPolicy(), wait_round=wait_round)


class Client(_Base):
    """A blocking client of one taskexec server.

    `base_url` defaults to `TASKEXEC_URL` (else http://127.0.0.1:8000), `api_key` to
    `TASKEXEC_API_KEY`. `timeout` bounds each HTTP request (a long poll gets its wait on top);
    `retry` says how reads, idempotent submits and unsent requests are retried; `wait_round`
    is the longest single `?wait=` of `wait()` and `run()`. Use it as a context manager, or
    call `close()`.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        wait_round: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout, retry, wait_round)
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=self._headers,
            timeout=self._timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def tasks(self, tags: Iterable[str] | None = None) -> list[TaskInfo]:
        """Registered tasks, sorted by name; with `tags`, those that carry all of them."""
        return SyncDriver(self._http).run(self._core.tasks(tags))

    def task(self, name: str) -> TaskInfo:
        """One task's docs, parameters and their JSON Schema. Raises `NotFound`."""
        return SyncDriver(self._http).run(self._core.task(name))

    def submit(
        self,
        name: str,
        params: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        **options: Unpack[JobOptions],
    ) -> Job:
        """Queue a job and return it. A key is made when none is given, so a retried submit
        never queues twice. Raises `ValidationFailed` for bad params, `NotFound`."""
        flow = self._core.submit(name, params, idempotency_key=idempotency_key, **options)
        return SyncDriver(self._http).run(flow)

    def submit_many(
        self,
        name: str,
        items: Iterable[Mapping[str, Any] | BatchItem],
        **options: Unpack[JobOptions],
    ) -> list[str]:
        """Queue one job per item (params, or a `BatchItem`) in one request; their ids in
        order. Each item gets an idempotency key, so a retry never queues twice."""
        return SyncDriver(self._http).run(self._core.submit_many(name, items, **options))

    def run(
        self,
        name: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        idempotency_key: str | None = None,
        options: JobOptions | None = None,
    ) -> Any:
        """Submit, wait (at most `timeout` seconds overall) and return the result. Raises
        `JobFailed` (`JobCanceled`) with the remote error, or `WaitTimeout`."""
        flow = self._core.run(
            name, params, timeout=timeout, idempotency_key=idempotency_key, options=options
        )
        return SyncDriver(self._http).run(flow)

    def get(self, job_id: str) -> Job:
        """The job as it is now. Raises `NotFound`."""
        return SyncDriver(self._http).run(self._core.get(job_id))

    def jobs(
        self,
        *,
        status: str | None = None,
        task: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> JobPage:
        """One page of jobs, newest first, optionally of one status and task."""
        flow = self._core.jobs(status=status, task=task, limit=limit, offset=offset)
        return SyncDriver(self._http).run(flow)

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """The job once it is finished; `WaitTimeout` if `timeout` seconds pass first."""
        return SyncDriver(self._http).run(self._core.wait(job_id, timeout))

    def result(self, job_id: str) -> Any:
        """A finished job's result. Raises `JobFailed` (`JobCanceled`), `JobNotFinished`."""
        return SyncDriver(self._http).run(self._core.result(job_id))

    def cancel(self, job_id: str) -> Job:
        """Cancel a pending job, or ask a running one to stop. `Conflict` if finished."""
        return SyncDriver(self._http).run(self._core.cancel(job_id))

    def artifact(self, artifact_id: str) -> Artifact:
        """One stored artifact."""
        return SyncDriver(self._http).run(self._core.artifact(artifact_id))

    def events(self, job_id: str, after: int | None = None) -> Iterator[JobEvent]:
        """The job's events after `after`, live until its terminal event; resumes by itself
        (with `Last-Event-ID`) when the connection drops."""
        return SyncDriver(self._http).iterate(self._core.events(job_id, after))

    def logs(self, job_id: str, follow: bool = False) -> Iterator[LogLine]:
        """The job's log lines so far; with `follow`, live until the job ends."""
        return SyncDriver(self._http).iterate(self._core.logs(job_id, follow))


class AsyncClient(_Base):
    """The asyncio twin of `Client`: the same arguments and methods, awaited (`events` and
    `logs` are async iterators). Use it with `async with`, or call `aclose()`."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        wait_round: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout, retry, wait_round)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=self._headers,
            timeout=self._timeout,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def tasks(self, tags: Iterable[str] | None = None) -> list[TaskInfo]:
        """See `Client.tasks`."""
        return await AsyncDriver(self._http).run(self._core.tasks(tags))

    async def task(self, name: str) -> TaskInfo:
        """See `Client.task`."""
        return await AsyncDriver(self._http).run(self._core.task(name))

    async def submit(
        self,
        name: str,
        params: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        **options: Unpack[JobOptions],
    ) -> Job:
        """See `Client.submit`."""
        flow = self._core.submit(name, params, idempotency_key=idempotency_key, **options)
        return await AsyncDriver(self._http).run(flow)

    async def submit_many(
        self,
        name: str,
        items: Iterable[Mapping[str, Any] | BatchItem],
        **options: Unpack[JobOptions],
    ) -> list[str]:
        """See `Client.submit_many`."""
        return await AsyncDriver(self._http).run(self._core.submit_many(name, items, **options))

    async def run(
        self,
        name: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (an overall deadline made of long polls)
        idempotency_key: str | None = None,
        options: JobOptions | None = None,
    ) -> Any:
        """See `Client.run`."""
        flow = self._core.run(
            name, params, timeout=timeout, idempotency_key=idempotency_key, options=options
        )
        return await AsyncDriver(self._http).run(flow)

    async def get(self, job_id: str) -> Job:
        """See `Client.get`."""
        return await AsyncDriver(self._http).run(self._core.get(job_id))

    async def jobs(
        self,
        *,
        status: str | None = None,
        task: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> JobPage:
        """See `Client.jobs`."""
        flow = self._core.jobs(status=status, task=task, limit=limit, offset=offset)
        return await AsyncDriver(self._http).run(flow)

    async def wait(
        self,
        job_id: str,
        timeout: float | None = None,  # noqa: ASYNC109 (an overall deadline made of long polls)
    ) -> Job:
        """See `Client.wait`."""
        return await AsyncDriver(self._http).run(self._core.wait(job_id, timeout))

    async def result(self, job_id: str) -> Any:
        """See `Client.result`."""
        return await AsyncDriver(self._http).run(self._core.result(job_id))

    async def cancel(self, job_id: str) -> Job:
        """See `Client.cancel`."""
        return await AsyncDriver(self._http).run(self._core.cancel(job_id))

    async def artifact(self, artifact_id: str) -> Artifact:
        """See `Client.artifact`."""
        return await AsyncDriver(self._http).run(self._core.artifact(artifact_id))

    def events(self, job_id: str, after: int | None = None) -> AsyncIterator[JobEvent]:
        """See `Client.events`."""
        return AsyncDriver(self._http).iterate(self._core.events(job_id, after))

    def logs(self, job_id: str, follow: bool = False) -> AsyncIterator[LogLine]:
        """See `Client.logs`."""
        return AsyncDriver(self._http).iterate(self._core.logs(job_id, follow))
