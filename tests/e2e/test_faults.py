"""Faults from task code over real HTTP: the job ends `failed`, the server keeps serving."""

import pytest

from tests.e2e.conftest import ServerProcess, execute, get_artifact, wait_job
from tests.faulty import HOWS, STOPPING_TASKS, UNPRINTABLE_TASKS

pytestmark = pytest.mark.e2e


def test_sys_exit_and_other_base_exceptions_fail_the_job_not_the_server(
    server: ServerProcess,
) -> None:
    with server.client() as client:
        submitted = {
            (task, how): execute(client, task, {"how": how})
            for task in STOPPING_TASKS
            for how in HOWS
        }
        for (task, how), job_id in submitted.items():
            job = wait_job(client, job_id)
            assert job["status"] == "failed", (task, how, job)
            assert job["error"]["type"] == HOWS[how], (task, how, job)
            assert job["attempts"] == 1, (task, how, job)
            error = get_artifact(client, job["result"])["data"]["error"]
            assert error["type"] == HOWS[how]
            assert error["traceback"], (task, how)

        assert server.running
        assert client.get("/health").status_code == 200
        after = wait_job(client, execute(client, "greet", {"name": "still here"}))
        assert after["status"] == "completed"


def test_an_exception_that_cannot_be_printed_fails_the_job_at_once(
    server: ServerProcess,
) -> None:
    with server.client() as client:
        for task in UNPRINTABLE_TASKS:
            job = wait_job(client, execute(client, task), timeout=15)
            assert job["status"] == "failed", (task, job)
            assert job["error"]["type"] == "Unprintable", (task, job)
            message = job["error"]["message"]
            assert message.startswith("<unprintable Unprintable"), (task, message)
            assert "RuntimeError" in message, (task, message)
            error = get_artifact(client, job["result"])["data"]["error"]
            assert error["message"] == message
            assert "Unprintable" in error["traceback"]
        assert client.get("/health").status_code == 200
