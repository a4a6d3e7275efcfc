"""`executor="process"`: sync tasks in a spawned child process that a timeout or a cancel kills."""

import asyncio
import multiprocessing
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.jobs.context import JobContext
from app.jobs.process import run_in_process
from app.tasks.registry import TaskRegistry
from tests.conftest import ClientFactory
from tests.helpers import apoll_until, execute, wait_for_job
from tests.jobs import process_tasks

# A spawned child imports the app package before it runs anything: that takes seconds on a
# busy machine (3-5 s at a load of 10 on 2 cores).
CHILD_START_SECONDS = 30.0
# Long enough for the child to start and write its pid on such a machine.
KILL_TIMEOUT = 12.0
WAIT_SECONDS = 10.0


async def _artifact(client: httpx.AsyncClient, artifact_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/artifacts/{artifact_id}")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def _read_pid(pid_file: Path, job_id: str | None, client: httpx.AsyncClient | None) -> int:
    """The child's pid once it has written it; fail if the job ends first or it takes too long."""

    async def written() -> bool:
        if pid_file.exists():  # noqa: ASYNC240 - one stat per poll
            return True
        if client is not None:
            job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
            assert job["status"] in {"pending", "running"}, (job["status"], job["error"])
        return False

    await apoll_until(written, within=CHILD_START_SECONDS, what="the child process's pid file")
    return int(pid_file.read_text())  # noqa: ASYNC240 - a few bytes


def _is_zombie(pid: int) -> bool:
    """Killed, but not yet reaped by its parent."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return any(line.split() == ["State:", "Z", "(zombie)"] for line in status)
    except FileNotFoundError:
        return False


async def _assert_process_gone(pid: int, within: float = 5.0, *, reaped: bool = True) -> None:
    """Wait until the process no longer exists (or, unless `reaped`, is at least dead)."""

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return not reaped and _is_zombie(pid)

    await apoll_until(gone, within=within, what=f"process {pid} to be gone")


def test_process_executor_is_shown_in_the_task_options(registry: type[TaskRegistry]) -> None:
    registry.register_function("square", process_tasks.square, executor="process")
    assert registry.get_info("square").options.executor == "process"


async def test_results_and_errors_come_back_from_the_child(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    registry.register_function("square", process_tasks.square, executor="process")
    registry.register_function("fail_in_child", process_tasks.fail_in_child, executor="process")
    registry.register_function("exit_abruptly", process_tasks.exit_abruptly, executor="process")
    async with client_factory(max_concurrency=3) as client:
        ok_id = await execute(client, "square", {"x": 7})
        failed_id = await execute(client, "fail_in_child", {"message": "bad input"})
        died_id = await execute(client, "exit_abruptly", {"code": 3})
        ok = await wait_for_job(client, ok_id, within=CHILD_START_SECONDS)
        failed = await wait_for_job(client, failed_id, within=CHILD_START_SECONDS)
        died = await wait_for_job(client, died_id, within=CHILD_START_SECONDS)

        assert ok["status"] == "completed", ok
        result = (await _artifact(client, ok["result"]))["result"]
        assert result["square"] == 49
        assert result["pid"] != os.getpid()

        assert failed["status"] == "failed", failed
        assert failed["error"] == {"type": "ChildFailure", "message": "bad input"}
        error = (await _artifact(client, failed["result"]))["error"]
        assert error["type"] == "ChildFailure"
        assert error["message"] == "bad input"
        # The traceback is the child's: it runs through the task's own frames.
        assert "_raise_child_failure" in error["traceback"]
        assert "ChildFailure: bad input" in error["traceback"]

        assert died["status"] == "failed", died
        assert died["error"]["type"] == "ProcessDied"
        assert "exited with code 3" in died["error"]["message"]


async def test_timeout_kills_the_child_process(
    client_factory: ClientFactory, registry: type[TaskRegistry], tmp_path: Path
) -> None:
    registry.register_function(
        "sleep_with_pid", process_tasks.sleep_with_pid, executor="process", timeout=KILL_TIMEOUT
    )
    pid_file = tmp_path / "child.pid"
    async with client_factory() as client:
        job_id = await execute(client, "sleep_with_pid", {"pid_file": str(pid_file)})
        pid = await _read_pid(pid_file, job_id, client)
        job = await wait_for_job(client, job_id, within=KILL_TIMEOUT + CHILD_START_SECONDS)
        assert job["status"] == "failed", job
        assert job["error"]["type"] == "JobTimeoutError"
        assert "its process was killed" in job["error"]["message"]
        assert job["attempts"] == 1
        error = (await _artifact(client, job["result"]))["error"]
        assert error["type"] == "JobTimeoutError"
        await _assert_process_gone(pid)


@pytest.mark.parametrize("chosen_by", ["task", "setting"])
async def test_cancel_kills_a_running_child_process(
    client_factory: ClientFactory, registry: type[TaskRegistry], tmp_path: Path, chosen_by: str
) -> None:
    # The process executor, chosen by the task's option or by TASKEXEC_SYNC_EXECUTOR.
    options: dict[str, Any] = {"executor": "process"} if chosen_by == "task" else {}
    registry.register_function("sleep_with_pid", process_tasks.sleep_with_pid, **options)
    pid_file = tmp_path / "child.pid"
    settings = {"sync_executor": "process"} if chosen_by == "setting" else {}
    async with client_factory(**settings) as client:
        job_id = await execute(client, "sleep_with_pid", {"pid_file": str(pid_file)})
        pid = await _read_pid(pid_file, job_id, client)
        response = await client.post(f"/api/v1/jobs/{job_id}/$cancel")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "canceling"
        job = await wait_for_job(client, job_id)
        assert job["status"] == "canceled", job
        assert job["error"]["type"] == "JobCancelledError"
        data = await _artifact(client, job["result"])
        assert data["result"] is None
        assert data["error"]["type"] == "JobCancelledError"
        # Killed; whether it is also reaped when a second cancel arrives (PostgreSQL's NOTIFY
        # echo) is the subject of test_a_second_cancel_still_reaps_the_killed_child.
        await _assert_process_gone(pid, reaped=False)


async def test_a_second_cancel_still_reaps_the_killed_child(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    # One default-executor thread, kept busy below, makes the interleaving deterministic.
    loop.set_default_executor(ThreadPoolExecutor(1))
    pid_file = tmp_path / "child.pid"
    task = asyncio.create_task(
        run_in_process(process_tasks.sleep_with_pid, {"pid_file": str(pid_file)})
    )
    pid = await _read_pid(pid_file, None, None)
    gate = threading.Event()
    busy = loop.run_in_executor(None, gate.wait, WAIT_SECONDS)
    try:
        task.cancel()
        # One loop turn: the task kills the child and queues its join behind `busy`.
        await asyncio.sleep(0)
        # A second cancel, as when the worker is told twice (direct call and NOTIFY), and one
        # more turn for it to reach whatever the clean-up is waiting on.
        task.cancel()
        await asyncio.sleep(0)
        gate.set()
        await busy
        with pytest.raises(asyncio.CancelledError):
            await task
        await _assert_process_gone(pid, within=1.0)
    finally:
        gate.set()
        multiprocessing.active_children()  # reap what the code under test left behind


async def _async_task(x: int) -> int:
    return x


def _with_context(x: int, ctx: JobContext) -> int:
    return x


@pytest.mark.parametrize(
    ("fn", "reason"),
    [(_async_task, "is for sync functions"), (_with_context, "cannot take injected")],
)
def test_process_executor_rejects_async_and_injected_tasks(
    registry: type[TaskRegistry], fn: Any, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        registry.register_function("bad", fn, executor="process")
    assert not registry.has("bad")


def test_unknown_executor_is_rejected(registry: type[TaskRegistry]) -> None:
    with pytest.raises(ValueError, match="invalid options"):
        registry.register_function("bad", process_tasks.square, executor="fork")
    assert not registry.has("bad")
