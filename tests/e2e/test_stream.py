"""Server-Sent Events of a job from a real server, read by a real HTTP client as they come."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.jobs.events import TERMINAL_EVENTS
from tests.e2e.conftest import (
    ServerFactory,
    ServerProcess,
    execute,
    get_job,
    wait_job,
)
from tests.helpers import Sse, assert_problem, sse_events

pytestmark = pytest.mark.e2e

TASK_MODULES = "tests.e2e.tasks,tests.e2e.live_tasks"
PROBLEM_JSON = "application/problem+json"
UNKNOWN_ID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


@pytest.fixture
def live_server(server_factory: ServerFactory) -> ServerProcess:
    return server_factory(env={"TASKEXEC_TASK_MODULES": TASK_MODULES})


def stream_path(job_id: str) -> str:
    return f"/api/v1/jobs/{job_id}/$stream"


def assert_complete_history(events: list[Sse], first: int = 1) -> None:
    """Consecutive ids from `first`, ending with exactly one terminal event."""
    assert [e.id for e in events] == list(range(first, first + len(events)))
    assert [e.data["seq"] for e in events] == [e.id for e in events]
    assert [e.data["type"] for e in events] == [e.event for e in events]
    assert [e.event for e in events if e.event in TERMINAL_EVENTS] == [events[-1].event]


def read_until_live(events: Iterator[Sse]) -> list[Sse]:
    """Events up to the first moment created, started and a progress or log event arrived."""
    seen: list[Sse] = []
    for event in events:
        seen.append(event)
        kinds = {e.event for e in seen}
        if {"created", "started"} <= kinds and kinds & {"progress", "log"}:
            return seen
    raise AssertionError(f"the stream ended early: {[e.event for e in seen]}")


def test_a_running_job_streams_live_and_the_stream_ends_by_itself(
    live_server: ServerProcess, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    with live_server.client() as client, live_server.client() as observer:
        job_id = execute(client, "live_steps", {"release": str(release)})
        with client.stream("GET", stream_path(job_id)) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = sse_events(response)
            seen = read_until_live(events)
            # These arrived while the job was still running, held by its release file.
            assert get_job(observer, job_id)["status"] == "running"
            release.touch()
            # The server ends the stream after the terminal event.
            seen.extend(events)
        stored = observer.get(f"/api/v1/jobs/{job_id}/events").json()["items"]

    assert_complete_history(seen)
    assert seen[-1].event == "completed"
    assert seen[-1].data["data"]["status"] == "completed"
    assert [e.data for e in seen] == stored
    logs = [e.data["data"]["message"] for e in seen if e.event == "log"]
    assert logs == ["first step", "last step"]
    progress = [e.data["data"]["message"] for e in seen if e.event == "progress"]
    assert progress[-1] == "four of four"


def test_a_reconnect_with_last_event_id_resumes_after_it(
    live_server: ServerProcess, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    with live_server.client() as client:
        job_id = execute(client, "live_steps", {"release": str(release)})
        with client.stream("GET", stream_path(job_id)) as response:
            first = read_until_live(sse_events(response))
        last_seen = first[-1].id
        with client.stream(
            "GET", stream_path(job_id), headers={"Last-Event-ID": str(last_seen)}
        ) as response:
            assert response.status_code == 200
            events = sse_events(response)
            resumed = [next(events)]
            release.touch()
            resumed.extend(events)

    assert resumed[0].id == last_seen + 1
    assert_complete_history(first + resumed)
    assert resumed[-1].event == "completed"


def test_the_stream_of_a_finished_job_replays_everything_and_ends(
    live_server: ServerProcess, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    release.touch()
    with live_server.client() as client:
        job_id = execute(client, "live_steps", {"release": str(release)})
        assert wait_job(client, job_id)["status"] == "completed"
        total = client.get(f"/api/v1/jobs/{job_id}/events").json()["total"]

        with client.stream("GET", stream_path(job_id)) as response:
            replay = list(sse_events(response))
        with client.stream("GET", stream_path(job_id), headers={"Last-Event-ID": "2"}) as response:
            resumed = list(sse_events(response))
        with client.stream(
            "GET", stream_path(job_id), headers={"Last-Event-ID": str(total)}
        ) as response:
            assert response.status_code == 200
            nothing = list(sse_events(response))

    assert len(replay) == total
    assert_complete_history(replay)
    assert resumed == replay[2:]
    assert nothing == []


def test_a_client_leaving_mid_stream_does_not_cancel_the_job(
    live_server: ServerProcess, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    with live_server.client() as client:
        job_id = execute(client, "live_steps", {"release": str(release)})
        with client.stream("GET", stream_path(job_id)) as response:
            read_until_live(sse_events(response))
        # The connection is closed; the job goes on.
        assert get_job(client, job_id)["status"] == "running"
        release.touch()
        job = wait_job(client, job_id)
        assert client.get("/health").status_code == 200

    assert job["status"] == "completed"
    assert job["cancel_requested"] is False
    assert job["error"] is None


def test_a_stream_with_a_lowercase_id_and_after_query(
    live_server: ServerProcess, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    release.touch()
    with live_server.client() as client:
        job_id = execute(client, "live_steps", {"release": str(release)})
        wait_job(client, job_id)
        with client.stream("GET", stream_path(job_id.lower()), params={"after": 1}) as response:
            events = list(sse_events(response))

    assert events[0].id == 2
    assert_complete_history(events, first=2)


def test_a_malformed_job_id_is_400(live_server: ServerProcess) -> None:
    with live_server.client() as client:
        assert_problem(client.get(stream_path("not-a-ulid")), 400)


def test_the_stream_of_an_unknown_job_is_404(live_server: ServerProcess) -> None:
    with live_server.client() as client:
        assert_problem(client.get(stream_path(UNKNOWN_ID)), 404)


def test_a_bad_last_event_id_is_400(live_server: ServerProcess, tmp_path: Path) -> None:
    release = tmp_path / "release"
    release.touch()
    with live_server.client() as client:
        job_id = execute(client, "live_steps", {"release": str(release)})
        wait_job(client, job_id)
        assert_problem(client.get(stream_path(job_id), headers={"Last-Event-ID": "soon"}), 400)
