"""End-to-end fixtures: the real `python -m app serve` in a subprocess on 127.0.0.1.

Each server runs in its own process group with its own SQLite file under the test's tmp_path,
serving the tasks of `tests.e2e.tasks`. Every server a test starts is killed when it ends, and a
failing test's report carries the tail of each server's log.
"""

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import (
    TERMINAL_STATUSES,
    free_port,
    poll_until,
    wait_job_sync,
    wait_status_sync,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
TASK_MODULE = "tests.e2e.tasks"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 30.0
REQUEST_TIMEOUT = 10.0
SERVE_COMMAND = (sys.executable, "-m", "app", "serve", "--host", "127.0.0.1")

SERVERS_KEY = pytest.StashKey[list["ServerProcess"]]()
NO_SERVERS: list["ServerProcess"] = []


class ServerStartError(RuntimeError):
    """The server process exited or did not answer /health in time."""


class ServerProcess:
    """`python -m app serve` as a real process on a free port, over one SQLite file.

    `restart()` starts a new process (on a new free port) over the same database, so
    `base_url` may change across restarts; make clients after each start.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        max_concurrency: int = 4,
        lease_seconds: float = 30.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.db_path = workdir / "e2e.db"
        self.log_path = workdir / "server.log"
        self.max_concurrency = max_concurrency
        self.lease_seconds = lease_seconds
        self.extra_env = dict(env or {})
        self.port = 0
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._process is not None, "the server is not running"
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASKEXEC_")}
        python_path = [str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])]
        env.update(
            {
                "PYTHONPATH": os.pathsep.join(python_path),
                "PYTHONUNBUFFERED": "1",
                "TASKEXEC_DATABASE_URL": f"sqlite+aiosqlite:///{self.db_path}",
                "TASKEXEC_TASK_MODULES": TASK_MODULE,
                "TASKEXEC_MAX_CONCURRENCY": str(self.max_concurrency),
                "TASKEXEC_POLL_INTERVAL": "0.2",
                "TASKEXEC_LEASE_SECONDS": str(self.lease_seconds),
            }
        )
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the process and wait until GET /health answers 200; retry a lost port race."""
        assert not self.running, "the server is already running"
        last_error: ServerStartError | None = None
        for _ in range(3):
            try:
                self._start_once(timeout)
                return
            except ServerStartError as exc:
                last_error = exc
                self._reap()
        assert last_error is not None
        raise last_error

    def _start_once(self, timeout: float) -> None:
        self.port = free_port()
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n=== start {self.starts} on port {self.port} ===\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                [*SERVE_COMMAND, "--port", str(self.port)],
                cwd=self.workdir,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_healthy(timeout)

    def _wait_healthy(self, timeout: float) -> None:
        process = self._process
        assert process is not None

        with httpx.Client(base_url=self.base_url, timeout=1.0) as client:

            def healthy() -> bool:
                code = process.poll()
                if code is not None:
                    raise ServerStartError(f"server exited with {code}:\n{self.log_tail()}")
                try:
                    return client.get("/health").status_code == 200
                except httpx.TransportError:
                    return False

            try:
                poll_until(healthy, within=timeout, what="/health")
            except AssertionError as exc:
                tail = self.log_tail()
                raise ServerStartError(f"no answer from /health in {timeout} s:\n{tail}") from exc

    def client(self, **kwargs: Any) -> httpx.Client:
        """A client for this server (close it, e.g. `with server.client() as c:`)."""
        kwargs.setdefault("timeout", REQUEST_TIMEOUT)
        return httpx.Client(base_url=self.base_url, **kwargs)

    def async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        kwargs.setdefault("timeout", REQUEST_TIMEOUT)
        return httpx.AsyncClient(base_url=self.base_url, **kwargs)

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self._process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, sig)

    def kill9(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGKILL the process group and reap the process; returns its exit code."""
        assert self._process is not None, "the server is not running"
        self._signal_group(signal.SIGKILL)
        return self._process.wait(timeout)

    def send_sigterm(self) -> None:
        """Ask the server to stop gracefully, without waiting."""
        assert self._process is not None, "the server is not running"
        self._process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        """Wait (bounded) for the process to exit; returns its exit code."""
        assert self._process is not None, "the server is not running"
        return self._process.wait(timeout)

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM the server and wait for it to exit by itself; returns its exit code."""
        self.send_sigterm()
        return self.wait(timeout)

    def restart(self, timeout: float = START_TIMEOUT) -> None:
        """Start again over the same database (the previous process must have ended)."""
        assert self._process is not None, "the server was never started"
        assert self._process.poll() is not None, "stop the server before restarting it"
        self.start(timeout)

    def _reap(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(STOP_TIMEOUT)

    def close(self) -> None:
        """Kill the server (and anything it started) if it still runs."""
        self._reap()

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])


ServerFactory = Callable[..., ServerProcess]


@pytest.fixture
def server_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerFactory]:
    """`server_factory(max_concurrency=3, env={...})` starts a server; all are killed after."""
    servers: list[ServerProcess] = []
    request.node.stash[SERVERS_KEY] = servers

    def factory(
        *,
        max_concurrency: int = 4,
        lease_seconds: float = 30.0,
        env: dict[str, str] | None = None,
    ) -> ServerProcess:
        server = ServerProcess(
            tmp_path / f"server{len(servers)}",
            max_concurrency=max_concurrency,
            lease_seconds=lease_seconds,
            env=env,
        )
        servers.append(server)
        server.start()
        return server

    try:
        yield factory
    finally:
        for server in servers:
            server.close()


@pytest.fixture
def server(server_factory: ServerFactory) -> ServerProcess:
    """A server with the default settings."""
    return server_factory()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach each server's log tail to a failing test's report."""
    report = yield
    if report.failed:
        servers: list[ServerProcess] = item.stash.get(SERVERS_KEY, NO_SERVERS)
        for index, server in enumerate(servers):
            report.sections.append((f"server {index} log ({server.log_path})", server.log_tail()))
    return report


# Helpers shared by the e2e tests.


def execute(client: httpx.Client, task: str, params: dict[str, Any] | None = None) -> str:
    """Queue a job; assert the 202 contract; return the job id."""
    body = None if params is None else {"params": params}
    response = client.post(f"/api/v1/tasks/{task}/$execute", json=body)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    assert response.headers["location"] == f"/api/v1/jobs/{job_id}"
    return job_id


def get_job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


def wait_job(
    client: httpx.Client,
    job_id: str,
    *,
    statuses: frozenset[str] = TERMINAL_STATUSES,
    timeout: float = 20,
) -> dict[str, Any]:
    """The job once its status is one of `statuses`: terminal ones through `?wait=`, others
    after the events of its `$stream`; fails if the job settles in another status."""
    if statuses <= TERMINAL_STATUSES:
        job = wait_job_sync(client, job_id, within=timeout)
        assert job["status"] in statuses, job
        return job
    return wait_status_sync(client, job_id, statuses, within=timeout)


def count_jobs(client: httpx.Client, status: str | None = None, task: str | None = None) -> int:
    params: dict[str, str | int] = {"limit": 1}
    if status is not None:
        params["status"] = status
    if task is not None:
        params["task"] = task
    response = client.get("/api/v1/jobs", params=params)
    assert response.status_code == 200, response.text
    total: int = response.json()["total"]
    return total


def get_artifact(client: httpx.Client, artifact_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/artifacts/{artifact_id}")
    assert response.status_code == 200, response.text
    artifact: dict[str, Any] = response.json()
    return artifact


def list_all(client: httpx.Client, path: str, page_size: int = 200) -> list[dict[str, Any]]:
    """Every item of a paginated list, page by page."""
    items: list[dict[str, Any]] = []
    while True:
        response = client.get(path, params={"limit": page_size, "offset": len(items)})
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["items"])
        if not page["items"] or len(items) >= page["total"]:
            return items
