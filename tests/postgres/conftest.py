"""PostgreSQL fixtures: a fresh database per test, and real `python -m app` processes on it.

Every test gets its own database, created on the server named by TASKEXEC_TEST_POSTGRES_URL,
migrated by the real migrations and dropped afterwards, because processes outside pytest connect
to it. API and worker processes run in their own process groups, log to files under the test's
tmp_path, and are killed and reaped when the test ends; a failing test's report carries the tail
of each process's log.
"""

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Awaitable, Generator, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from app.db.database import Database
from app.db.migrate import upgrade
from app.jobs.scheduler import JobScheduler
from app.tasks.registry import TaskRegistry
from tests.conftest import asyncpg_dsn
from tests.helpers import free_port, poll_until
from tests.postgres.tasks import register_tasks

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[2]
TASK_MODULE = "tests.postgres.tasks"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
REQUEST_TIMEOUT = 10.0
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

PROCESSES_KEY = pytest.StashKey[list["AppProcess"]]()
NO_PROCESSES: list["AppProcess"] = []


# The database of one test.


async def _admin(base_url: str, statements: Sequence[tuple[str, tuple[Any, ...]]]) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(base_url), timeout=10)
    try:
        for statement, args in statements:
            await conn.execute(statement, *args)
    finally:
        await conn.close()


def drop_database(base_url: str, name: str) -> None:
    """Terminate the database's connections, then drop it."""
    asyncio.run(
        _admin(
            base_url,
            [
                (
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = $1 AND pid <> pg_backend_pid()",
                    (name,),
                ),
                (f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', ()),
            ],
        )
    )


@pytest.fixture
def pg_database(postgres_url: str) -> Iterator[str]:
    """A new database for this test, migrated to head; dropped when the test ends."""
    name = f"taskexec_pg_{os.getpid()}_{secrets.token_hex(4)}"
    asyncio.run(_admin(postgres_url, [(f'CREATE DATABASE "{name}"', ())]))
    url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        drop_database(postgres_url, name)


class Postgres:
    """Blocking queries on one database for sync tests (a connection per call, so a server
    restart costs nothing), plus `run` for other coroutines on the same event loop."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dsn = asyncpg_dsn(url)
        self.name = make_url(url).database or ""
        self._runner = asyncio.Runner()

    def run(self, coro: Awaitable[T]) -> T:
        async def main() -> T:
            return await coro

        return self._runner.run(main())

    def fetch(self, query: str, *args: Any) -> list[Any]:
        async def fetch() -> list[Any]:
            conn = await asyncpg.connect(self.dsn, timeout=10)
            try:
                return list(await conn.fetch(query, *args))
            finally:
                await conn.close()

        return self.run(fetch())

    def fetchval(self, query: str, *args: Any) -> Any:
        rows = self.fetch(query, *args)
        return rows[0][0] if rows else None

    def status_counts(self) -> dict[str, int]:
        rows = self.fetch("SELECT status, count(*) FROM jobs GROUP BY status")
        return {row[0]: row[1] for row in rows}

    def unfinished(self) -> int:
        count: int = self.fetchval(
            "SELECT count(*) FROM jobs WHERE status NOT IN ('completed', 'failed', 'canceled')"
        )
        return count

    def listeners(self) -> int:
        """Backends of this database that LISTEN (one per worker process; API processes
        may hold one as well)."""
        count: int = self.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'",
            self.name,
        )
        return count

    def artifacts_per_job(self) -> dict[str, int]:
        rows = self.fetch("SELECT job_id, count(*) FROM artifacts GROUP BY job_id")
        return {row[0]: row[1] for row in rows}

    def submit(
        self, task: str, params_list: Sequence[dict[str, Any]], *, retries: int | None = None
    ) -> list[str]:
        """Queue jobs through `JobScheduler` (one transaction and one NOTIFY for the lot)."""
        registry = TaskRegistry
        if not registry.has(task):
            register_tasks(registry)

        async def submit() -> list[str]:
            database = Database(self.url)
            try:
                scheduler = JobScheduler(database, max_concurrency=1, registry=registry.default())
                jobs = await asyncio.gather(
                    *(scheduler.submit(task, params, retries=retries) for params in params_list)
                )
                return [job.id for job in jobs]
            finally:
                await database.dispose()

        return self.run(submit())

    def close(self) -> None:
        self._runner.close()


@pytest.fixture
def pg(pg_database: str) -> Iterator[Postgres]:
    postgres = Postgres(pg_database)
    try:
        yield postgres
    finally:
        postgres.close()


# Real processes.


class AppProcess:
    """`python -m app <args>` in its own process group, logging to a file."""

    def __init__(self, args: Sequence[str], env: dict[str, str], log_path: Path, cwd: Path) -> None:
        self.args = list(args)
        self.log_path = log_path
        self.port = 0
        with log_path.open("ab") as log:
            log.write(f"=== {' '.join(self.args)} ===\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app", *self.args],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def client(self, **kwargs: Any) -> httpx.Client:
        kwargs.setdefault("timeout", REQUEST_TIMEOUT)
        return httpx.Client(base_url=self.base_url, **kwargs)

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        with httpx.Client(base_url=self.base_url, timeout=1.0) as client:

            def healthy() -> bool:
                code = self.process.poll()
                if code is not None:
                    pytest.fail(f"process exited with {code}:\n{self.log_tail()}")
                with contextlib.suppress(httpx.TransportError):
                    return client.get("/health").status_code == 200
                return False

            poll_until(healthy, within=timeout, what=f"/health:\n{self.log_tail()}")

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM the process (it stops its workers gracefully) and wait for it to exit."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill9(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGKILL the whole process group and reap the process at once."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.wait(timeout)

    def close(self) -> None:
        """Kill whatever of the group still runs, and reap the process."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(STOP_TIMEOUT)

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])


class Processes:
    """Starts API and worker processes on one database; `close()` kills them all."""

    def __init__(self, url: str, workdir: Path, pg: Postgres) -> None:
        self.url = url
        self.workdir = workdir
        self.pg = pg
        self.started: list[AppProcess] = []

    def environment(self, extra: dict[str, str] | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASKEXEC_")}
        env.update(
            {
                "PYTHONPATH": os.pathsep.join(
                    [str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])]
                ),
                "PYTHONUNBUFFERED": "1",
                "TASKEXEC_DATABASE_URL": self.url,
                "TASKEXEC_TASK_MODULES": TASK_MODULE,
                "TASKEXEC_LOG_LEVEL": "warning",
                "TASKEXEC_POLL_INTERVAL": "0.2",
                "TASKEXEC_SHUTDOWN_GRACE_SECONDS": "5",
            }
        )
        env.update(extra or {})
        return env

    def _start(self, args: Sequence[str], env: dict[str, str] | None, name: str) -> AppProcess:
        log_path = self.workdir / f"{len(self.started)}-{name}.log"
        process = AppProcess(args, self.environment(env), log_path, self.workdir)
        self.started.append(process)
        return process

    def worker(
        self, *, processes: int = 1, env: dict[str, str] | None = None, wait: bool = True
    ) -> AppProcess:
        """`python -m app worker --processes N`; with `wait`, until each one LISTENs.

        Readiness is counted in LISTEN connections to the database, so start workers before
        the API processes of a test (an API process may listen for events too).
        """
        listening = self.pg.listeners() + processes
        process = self._start(["worker", "--processes", str(processes)], env, "worker")
        if wait:

            def ready() -> bool:
                if not process.running:
                    code = process.process.poll()
                    pytest.fail(f"worker exited with {code}:\n{process.log_tail()}")
                return self.pg.listeners() >= listening

            poll_until(ready, within=START_TIMEOUT, interval=0.1, what=f"{listening} listeners")
        return process

    def api(self, *, env: dict[str, str] | None = None) -> AppProcess:
        """`python -m app serve --no-worker` on a free port, once /health answers."""
        for attempt in range(3):
            port = free_port()
            process = self._start(
                ["serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port)], env, "api"
            )
            process.port = port
            try:
                process.wait_healthy()
                return process
            except pytest.fail.Exception:
                # Lost the race for the port to another process; try another one.
                process.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        for process in self.started:
            process.close()


@pytest.fixture
def processes(
    request: pytest.FixtureRequest, pg_database: str, pg: Postgres, tmp_path: Path
) -> Iterator[Processes]:
    started = Processes(pg_database, tmp_path, pg)
    request.node.stash[PROCESSES_KEY] = started.started
    try:
        yield started
    finally:
        started.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach each process's log tail to a failing test's report."""
    report = yield
    if report.failed:
        started: list[AppProcess] = item.stash.get(PROCESSES_KEY, NO_PROCESSES)
        for index, process in enumerate(started):
            report.sections.append(
                (f"process {index} log ({process.log_path})", process.log_tail())
            )
    return report


# Restarting the PostgreSQL server (only a local one).


class PostgresServer:
    """The local cluster behind the test URL, driven by `pg_ctlcluster`."""

    def __init__(self, url: str, version: str) -> None:
        parsed = make_url(url)
        self.host = parsed.host or "127.0.0.1"
        self.port = parsed.port or 5432
        self.version = version

    def ctl(self, action: str) -> None:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", self.version, "main", action],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def is_ready(self) -> bool:
        result = subprocess.run(
            ["pg_isready", "-q", "-h", self.host, "-p", str(self.port)],
            check=False,
            capture_output=True,
            timeout=10,
        )
        return result.returncode == 0

    def wait_ready(self, timeout: float = 60.0) -> bool:
        try:
            poll_until(self.is_ready, within=timeout, interval=0.2, what="pg_isready")
        except AssertionError:
            return False
        return True

    def restart(self) -> None:
        self.ctl("restart")
        assert self.wait_ready(), "PostgreSQL did not come back after the restart"

    def ensure_running(self) -> None:
        if self.wait_ready(timeout=10):
            return
        with contextlib.suppress(subprocess.SubprocessError):
            self.ctl("start")
        assert self.wait_ready(), "PostgreSQL is not running and did not start"


@pytest.fixture
def postgres_server(postgres_url: str, pg_database: str) -> Iterator[PostgresServer]:
    """Control of the local server; it is running again when the test ends, pass or fail.

    Depends on `pg_database` so that the server is back before the database is dropped.
    """
    if make_url(postgres_url).host not in LOCAL_HOSTS:
        pytest.skip("the PostgreSQL server is not local; it cannot be restarted from here")
    versions = os.listdir("/etc/postgresql") if os.path.isdir("/etc/postgresql") else []
    if len(versions) != 1:
        pytest.skip(f"need exactly one cluster version in /etc/postgresql, found {versions}")
    server = PostgresServer(postgres_url, versions[0])
    try:
        yield server
    finally:
        server.ensure_running()
