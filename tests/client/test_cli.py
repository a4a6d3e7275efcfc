"""`taskexec-client`, installed alone in its own virtual environment, against a real server."""

import json
import queue
import subprocess
import threading
from pathlib import Path

import pytest

from taskexec_client import Client
from tests.client.conftest import clean_env
from tests.e2e.conftest import ServerProcess
from tests.helpers import free_port

pytestmark = pytest.mark.e2e

CLI_TIMEOUT = 60


class Cli:
    def __init__(self, venv: Path, url: str) -> None:
        self.command = str(venv / "bin" / "taskexec-client")
        self.env = clean_env(TASKEXEC_URL=url)

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.command, *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=CLI_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )


@pytest.fixture
def cli(client_venv: Path, live_server: ServerProcess) -> Cli:
    return Cli(client_venv, live_server.base_url)


def test_run_wait_json_shows_live_progress_and_prints_the_result(
    cli: Cli, client: Client, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    command = [cli.command, "run", "live_steps", "-p", f"release={release}", "--wait", "--json"]
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli.env
    ) as process:

        def read_stderr() -> None:
            for line in process.stderr or []:
                lines.put(line)

        reader = threading.Thread(target=read_stderr)
        reader.start()
        try:
            while not any("25% one of four" in line for line in seen):
                seen.append(lines.get(timeout=CLI_TIMEOUT))
            release.touch()
            process.wait(timeout=CLI_TIMEOUT)  # the JSON on stdout is far below a pipe's buffer
            stdout = process.stdout.read() if process.stdout else ""
        finally:
            if process.poll() is None:
                process.kill()
            reader.join(CLI_TIMEOUT)
    while not lines.empty():
        seen.append(lines.get())

    assert process.returncode == 0
    output = json.loads(stdout)
    assert (output["status"], output["result"]) == ("completed", {"steps": 2})
    progress = "".join(seen)
    assert "INFO    taskexec.task.live_steps: first step" in progress
    assert "INFO    taskexec.task.live_steps: last step" in progress
    assert "100% four of four" in progress
    assert client.get(output["job_id"]).status == "completed"


def test_params_are_json_when_they_parse_and_strings_otherwise(cli: Cli) -> None:
    numbers = cli("run", "add", "-p", "a=1", "-p", "b=2", "--wait")
    quoted = cli("run", "greet", "-p", 'name="42"', "--wait", "--json")
    plain = cli("run", "greet", "-p", "name=Ada Lovelace", "--wait", "--json")

    assert (numbers.returncode, json.loads(numbers.stdout)) == (0, {"sum": 3})
    assert json.loads(quoted.stdout)["result"] == {"message": "Hello, 42!"}
    assert json.loads(plain.stdout)["result"] == {"message": "Hello, Ada Lovelace!"}


def test_a_failing_job_exits_1_with_the_remote_traceback(cli: Cli) -> None:
    text = cli("run", "explode", "-p", "message=kaboom", "--wait")
    as_json = cli("run", "explode", "-p", "message=kaboom", "--wait", "--json")

    assert text.returncode == 1
    assert "ValueError: kaboom" in text.stderr
    assert "_check_message" in text.stderr
    assert as_json.returncode == 1
    error = json.loads(as_json.stdout)["error"]
    assert (error["type"], error["message"]) == ("ValueError", "kaboom")
    assert error["traceback"].rstrip().endswith("ValueError: kaboom")


def test_usage_errors_exit_2(cli: Cli) -> None:
    missing = cli("run")
    not_a_pair = cli("run", "add", "-p", "novalue")
    rejected = cli("run", "add", "-p", "a=x", "--wait")
    unknown = cli("frobnicate")

    assert [p.returncode for p in (missing, not_a_pair, rejected, unknown)] == [2, 2, 2, 2]
    assert "'novalue' is not key=value" in not_a_pair.stderr
    assert "params.a: Input should be a valid integer" in rejected.stderr


def test_an_unreachable_server_exits_3(client_venv: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = Cli(client_venv, url)("tasks")
    assert done.returncode == 3
    assert "server unreachable" in done.stderr
    assert "GET /api/v1/tasks: ConnectError" in done.stderr


def test_tasks_jobs_job_logs_and_cancel(cli: Cli, client: Client, tmp_path: Path) -> None:
    tasks = cli("tasks", "--tags", "math", "--json")
    task = cli("task", "greet")
    assert [t["name"] for t in json.loads(tasks.stdout)] == ["add"]
    assert "name: str (default 'World')" in task.stdout

    release = tmp_path / "release"
    release.touch()
    finished = client.submit("live_steps", {"release": str(release)})
    client.wait(finished.id, timeout=30)
    logs = cli("logs", finished.id)
    follow = cli("logs", finished.id, "--follow")
    job = cli("job", finished.id, "--json")
    assert [line.split(": ", 1)[1] for line in logs.stdout.splitlines()] == [
        "first step",
        "last step",
    ]
    assert follow.stdout == logs.stdout
    assert json.loads(job.stdout)["status"] == "completed"

    blocked = client.submit("block_async", {"release": str(tmp_path / "never")})
    canceled = cli("cancel", blocked.id)
    assert canceled.returncode == 0
    assert client.wait(blocked.id, timeout=30).status == "canceled"
    listed = cli("jobs", "--status", "canceled", "--task", "block_async", "--json")
    assert [j["id"] for j in json.loads(listed.stdout)] == [blocked.id]
    again = cli("cancel", blocked.id)
    assert again.returncode == 1
    assert f"Job {blocked.id} is already canceled." in again.stderr
    missing = cli("job", "01ARZ3NDEKTSV4RRFFQ69G5FAV")
    assert missing.returncode == 1
