"""`Client` and `AsyncClient` against a real server process."""

from pathlib import Path

import pytest

from taskexec_client import (
    AsyncClient,
    Client,
    Conflict,
    JobCanceled,
    JobFailed,
    JobNotFinished,
    NotFound,
    Unauthorized,
    ValidationFailed,
    WaitTimeout,
)
from tests.client.conftest import TASK_MODULES, fast_retries
from tests.e2e.conftest import ServerFactory, ServerProcess

pytestmark = pytest.mark.e2e

UNKNOWN_ID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


def test_run_submits_waits_and_returns_the_result(client: Client) -> None:
    assert client.run("add", {"a": 2, "b": 40}, timeout=30) == {"sum": 42}


def test_submit_wait_result_and_the_artifact(client: Client) -> None:
    job = client.submit("greet", {"name": "Ada"})
    assert (job.task_name, job.params) == ("greet", {"name": "Ada"})

    done = client.wait(job.id, timeout=30)

    assert done.status == "completed"
    assert done.finished
    assert client.result(job.id) == {"message": "Hello, Ada!"}
    assert done.result is not None
    artifact = client.artifact(done.result)
    assert artifact.job_id == job.id
    assert artifact.data == {
        "task_name": "greet",
        "params": {"name": "Ada"},
        "result": {"message": "Hello, Ada!"},
        "error": None,
    }


def test_a_failed_job_raises_job_failed_with_the_remote_error(client: Client) -> None:
    with pytest.raises(JobFailed) as caught:
        client.run("explode", {"message": "kaboom"}, timeout=30)

    failed = caught.value
    assert not isinstance(failed, JobCanceled)
    assert (failed.error_type, failed.message) == ("ValueError", "kaboom")
    assert failed.traceback is not None
    assert "_check_message" in failed.traceback
    assert failed.traceback.rstrip().endswith("ValueError: kaboom")
    assert failed.job.status == "failed"
    with pytest.raises(JobFailed):
        client.result(failed.job_id)


def test_the_same_idempotency_key_gives_the_same_job(client: Client) -> None:
    first = client.submit("quick", {"n": 1}, idempotency_key="order-77")
    again = client.submit("quick", {"n": 1}, idempotency_key="order-77")
    other = client.submit("quick", {"n": 1})

    assert again.id == first.id
    assert other.id != first.id
    with pytest.raises(Conflict):
        client.submit("quick", {"n": 2}, idempotency_key="order-77")


def test_bad_params_and_unknown_names_are_typed_errors(client: Client) -> None:
    with pytest.raises(ValidationFailed) as caught:
        client.submit("add", {"a": "x"})
    assert {tuple(e["loc"]) for e in caught.value.errors} == {("params", "a"), ("params", "b")}
    with pytest.raises(NotFound):
        client.task("nope")
    with pytest.raises(NotFound):
        client.get(UNKNOWN_ID)
    assert client.jobs(task="add").total == 0


def test_cancel_a_running_job(client: Client, tmp_path: Path) -> None:
    job = client.submit("block_async", {"release": str(tmp_path / "never")})
    with pytest.raises(JobNotFinished):
        client.result(job.id)

    client.cancel(job.id)
    done = client.wait(job.id, timeout=30)

    assert done.status == "canceled"
    with pytest.raises(JobCanceled) as caught:
        client.result(job.id)
    assert isinstance(caught.value, JobFailed)
    with pytest.raises(Conflict):
        client.cancel(job.id)


def test_wait_raises_wait_timeout_at_its_deadline_and_the_job_goes_on(
    client: Client, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    job = client.submit("block_async", {"release": str(release)})

    with pytest.raises(WaitTimeout) as caught:
        client.wait(job.id, timeout=0.3)

    assert caught.value.job.id == job.id
    assert caught.value.job.status in ("pending", "running")
    release.touch()
    assert client.wait(job.id, timeout=30).status == "completed"


def test_wait_learns_a_lower_server_cap_and_waits_in_rounds(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory(
        env={"TASKEXEC_TASK_MODULES": TASK_MODULES, "TASKEXEC_MAX_WAIT_SECONDS": "0.5"}
    )
    release = tmp_path / "release"
    with Client(server.base_url, retry=fast_retries(), wait_round=30) as client:
        job = client.submit("block_async", {"release": str(release)})
        # Three rounds of 0.5 s at most, each a 200 (a round over the cap would be a 400).
        with pytest.raises(WaitTimeout):
            client.wait(job.id, timeout=1.2)
        release.touch()
        assert client.run("add", {"a": 1, "b": 1}, timeout=30) == {"sum": 2}


def test_logs_and_events_of_a_finished_job(client: Client, tmp_path: Path) -> None:
    release = tmp_path / "release"
    release.touch()
    job = client.submit("live_steps", {"release": str(release)})
    client.wait(job.id, timeout=30)

    events = list(client.events(job.id))
    logs = list(client.logs(job.id))

    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].type == "created"
    assert events[-1].type == "completed"
    assert [line.message for line in logs] == ["first step", "last step"]
    assert [line.message for line in client.logs(job.id, follow=True)] == [
        "first step",
        "last step",
    ]
    assert [e.seq for e in client.events(job.id, after=events[-2].seq)] == [events[-1].seq]


async def test_async_client_does_the_same(live_server: ServerProcess, tmp_path: Path) -> None:
    async with AsyncClient(live_server.base_url, retry=fast_retries()) as client:
        assert [t.name for t in await client.tasks(["math"])] == ["add"]
        assert await client.run("add", {"a": 1, "b": 2}, timeout=30) == {"sum": 3}
        with pytest.raises(JobFailed) as caught:
            await client.run("explode", timeout=30)
        assert caught.value.error_type == "ValueError"

        release = tmp_path / "release"
        job = await client.submit("live_steps", {"release": str(release)})
        seen = []
        async for event in client.events(job.id):
            seen.append(event.type)
            if event.type == "progress" and "release" not in seen:
                seen.append("release")
                release.touch()
        assert seen[0] == "created"
        assert seen[-1] == "completed"
        assert "log" in seen
        assert await client.result(job.id) == {"steps": 2}
        lines = [line.message async for line in client.logs(job.id)]
        assert lines == ["first step", "last step"]


def test_url_and_api_key_come_from_the_environment(
    server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = server_factory(
        env={"TASKEXEC_TASK_MODULES": TASK_MODULES, "TASKEXEC_API_KEYS": "s3cret"}
    )
    with Client(server.base_url, retry=fast_retries()) as anonymous, pytest.raises(Unauthorized):
        anonymous.tasks()
    with Client(server.base_url, api_key="wrong") as wrong, pytest.raises(Unauthorized):
        wrong.get(UNKNOWN_ID)

    monkeypatch.setenv("TASKEXEC_URL", server.base_url)
    monkeypatch.setenv("TASKEXEC_API_KEY", "s3cret")
    with Client() as client:
        assert client.base_url == server.base_url
        assert client.run("add", {"a": 1, "b": 1}, timeout=30) == {"sum": 2}
