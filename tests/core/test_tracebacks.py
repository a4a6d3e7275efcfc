"""Tracebacks are stored in full and shown without server file paths unless configured."""

from pathlib import Path
from typing import Any

import httpx
import pytest

from app.artifacts.manager import ArtifactManager
from app.core.tracebacks import (
    exception_message,
    format_exception,
    redact_paths,
    redact_run_record,
)
from app.db.database import Database
from app.jobs.context import JobContext
from app.tasks.registry import TaskRegistry
from tests.conftest import ClientFactory
from tests.faulty import Unprintable, unprintable_sync
from tests.helpers import events_of, get_json, parse_sse, run_to_end

THIS_FILE = str(Path(__file__).resolve())
THIS_DIR = str(Path(__file__).resolve().parent)

SAMPLE = (
    "Traceback (most recent call last):\n"
    '  File "/home/deploy/venv/lib/python3.11/site-packages/app/jobs/runner.py", line 99, in run\n'
    "    value = await definition.fn(**kwargs)\n"
    '  File "/srv/tasks/my_tasks.py", line 7, in explode\n'
    '    raise ValueError("bad input at /srv/tasks/data.csv")\n'
    "ValueError: bad input at /srv/tasks/data.csv\n"
)


# Redaction ----------------------------------------------------------------------------------


def test_redact_paths_keeps_only_file_names() -> None:
    redacted = redact_paths(SAMPLE)

    assert '  File "runner.py", line 99, in run\n' in redacted
    assert '  File "my_tasks.py", line 7, in explode\n' in redacted
    assert "/home/deploy" not in redacted.split("ValueError:")[0]
    assert "site-packages" not in redacted
    assert '"/srv/tasks/my_tasks.py"' not in redacted


def test_redact_paths_leaves_other_lines_alone() -> None:
    redacted = redact_paths(SAMPLE)

    assert redacted.startswith("Traceback (most recent call last):\n")
    assert '    raise ValueError("bad input at /srv/tasks/data.csv")\n' in redacted
    assert redacted.endswith("ValueError: bad input at /srv/tasks/data.csv\n")
    assert redacted.count("\n") == SAMPLE.count("\n")


def test_redact_paths_windows_and_relative_and_special() -> None:
    text = (
        'File "C:\\Users\\me\\proj\\tasks.py", line 1\n'
        'File "relative/dir/mod.py", line 2\n'
        'File "plain.py", line 3\n'
        'File "<string>", line 4\n'
    )

    assert redact_paths(text) == (
        'File "tasks.py", line 1\n'
        'File "mod.py", line 2\n'
        'File "plain.py", line 3\n'
        'File "<string>", line 4\n'
    )


def test_redact_paths_without_file_lines_is_unchanged() -> None:
    assert redact_paths("no paths here") == "no paths here"
    assert redact_paths("") == ""


def test_format_exception_includes_the_full_path() -> None:
    try:
        raise RuntimeError("kaput")
    except RuntimeError as exc:
        text = format_exception(exc)

    assert text.startswith("Traceback (most recent call last):")
    assert f'File "{THIS_FILE}"' in text
    assert text.rstrip().endswith("RuntimeError: kaput")
    assert f'File "{Path(THIS_FILE).name}"' in redact_paths(text)
    assert THIS_DIR not in redact_paths(text)


class _Moduleless(type):
    @property
    def __module__(cls) -> str:  # type: ignore[override]
        raise RuntimeError("no module")


class Odd(ValueError, metaclass=_Moduleless):
    """An exception the standard traceback module cannot format."""


def test_format_exception_never_raises() -> None:
    try:
        raise Odd("strange")
    except Odd as exc:
        text = format_exception(exc)

    assert text == "Odd: strange\n(the traceback could not be formatted: RuntimeError)\n"


def test_exception_message_of_an_unprintable_exception() -> None:
    with pytest.raises(Unprintable) as caught:
        unprintable_sync()

    message = exception_message(caught.value)
    assert message == "<unprintable Unprintable: __str__ raised RuntimeError>"
    assert "Unprintable" in format_exception(caught.value)
    assert exception_message(ValueError("fine")) == "fine"


def test_redact_run_record() -> None:
    record = {
        "task_name": "t",
        "params": {"path": "/srv/x"},
        "result": None,
        "error": {"type": "ValueError", "message": "m", "traceback": SAMPLE},
    }

    redacted = redact_run_record(record)

    assert redacted["error"]["traceback"] == redact_paths(SAMPLE)
    assert redacted["error"]["type"] == "ValueError"
    assert redacted["params"] == {"path": "/srv/x"}
    # The input is not modified.
    assert record["error"]["traceback"] == SAMPLE  # type: ignore[index]


def test_redact_run_record_leaves_other_data_alone() -> None:
    ok = {"task_name": "t", "params": {}, "result": 1, "error": None}
    lost = {"task_name": "t", "params": {}, "result": None, "error": {"traceback": None}}

    assert redact_run_record(ok) == ok
    assert redact_run_record(lost) == lost
    assert redact_run_record([1, 2]) == [1, 2]
    assert redact_run_record("text") == "text"


# Through the API ----------------------------------------------------------------------------


def _register_failing(registry: type[TaskRegistry]) -> None:
    @registry.register("explode")
    def explode(reason: str) -> None:
        raise ValueError(f"exploded: {reason}")


async def _failed_run(client: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    job = await run_to_end(client, "explode", {"reason": "on purpose"})
    assert job["status"] == "failed", job
    response = await client.get(f"/api/v1/artifacts/{job['result']}")
    assert response.status_code == 200
    artifact: dict[str, Any] = response.json()
    return job, artifact


async def test_api_redacts_traceback_paths_by_default(
    registry: type[TaskRegistry], client_factory: ClientFactory
) -> None:
    _register_failing(registry)

    async with client_factory() as client:
        job, artifact = await _failed_run(client)
        listed = (await client.get("/api/v1/artifacts", params={"job_id": job["id"]})).json()

    assert job["error"] == {"type": "ValueError", "message": "exploded: on purpose"}
    error = artifact["data"]["error"]
    assert error["type"] == "ValueError"
    assert error["message"] == "exploded: on purpose"
    traceback = error["traceback"]
    assert traceback.startswith("Traceback (most recent call last):")
    assert 'File "test_tracebacks.py"' in traceback
    assert "in explode" in traceback
    assert traceback.rstrip().endswith("ValueError: exploded: on purpose")
    assert THIS_DIR not in traceback
    assert "site-packages" not in traceback
    for line in traceback.splitlines():
        if line.strip().startswith('File "'):
            path = line.split('"')[1]
            assert "/" not in path, line
            assert "\\" not in path, line
    # The list view redacts the same way.
    assert listed["items"][0]["data"]["error"]["traceback"] == traceback


async def test_api_shows_full_paths_when_configured(
    registry: type[TaskRegistry], client_factory: ClientFactory
) -> None:
    _register_failing(registry)

    async with client_factory(expose_traceback_paths=True) as client:
        job, artifact = await _failed_run(client)
        listed = (await client.get("/api/v1/artifacts", params={"job_id": job["id"]})).json()

    traceback = artifact["data"]["error"]["traceback"]
    assert f'File "{THIS_FILE}"' in traceback
    assert traceback.rstrip().endswith("ValueError: exploded: on purpose")
    assert listed["items"][0]["data"]["error"]["traceback"] == traceback


async def test_full_traceback_is_stored(
    registry: type[TaskRegistry], client_factory: ClientFactory, database: Database
) -> None:
    _register_failing(registry)

    async with client_factory() as client:
        job, shown = await _failed_run(client)

    stored = await ArtifactManager(database).get(job["result"])

    assert stored is not None
    assert isinstance(stored.data, dict)
    error = stored.data["error"]
    assert isinstance(error, dict)
    stored_traceback = error["traceback"]
    assert isinstance(stored_traceback, str)
    assert f'File "{THIS_FILE}"' in stored_traceback
    assert redact_paths(stored_traceback) == shown["data"]["error"]["traceback"]


async def test_successful_run_has_no_traceback(
    registry: type[TaskRegistry], client_factory: ClientFactory
) -> None:
    @registry.register("fine")
    def fine() -> str:
        return "ok"

    async with client_factory() as client:
        job = await run_to_end(client, "fine")
        artifact = (await client.get(f"/api/v1/artifacts/{job['result']}")).json()

    assert job["status"] == "completed"
    assert job["error"] is None
    assert artifact["data"]["error"] is None
    assert artifact["data"]["result"] == "ok"


# Tracebacks in log lines ---------------------------------------------------------------------


def _register_logging(registry: type[TaskRegistry]) -> None:
    @registry.register("logs_a_failure")
    def logs_a_failure(ctx: JobContext) -> str:
        try:
            raise ValueError("caught")
        except ValueError:
            ctx.logger.exception("could not do it")
        return "done"


async def _logged_tracebacks(client: httpx.AsyncClient) -> list[str]:
    """The logged line as /logs, /events and $stream show it."""
    job = await run_to_end(client, "logs_a_failure")
    assert job["status"] == "completed", job
    logs = await get_json(client, f"/api/v1/jobs/{job['id']}/logs")
    events = await events_of(client, job["id"])
    stream = await client.get(f"/api/v1/jobs/{job['id']}/$stream")
    streamed = parse_sse(stream.text)
    shown = [
        *(item["message"] for item in logs["items"]),
        *(e["data"]["message"] for e in events if e["type"] == "log"),
        *(e["data"]["data"]["message"] for e in streamed if e["event"] == "log"),
    ]
    assert len(shown) == 3
    for message in shown:
        assert message.startswith("could not do it\nTraceback (most recent call last):")
        assert message.rstrip().endswith("ValueError: caught")
    return shown


async def test_logged_tracebacks_are_shown_without_server_paths(
    registry: type[TaskRegistry], client_factory: ClientFactory
) -> None:
    _register_logging(registry)

    async with client_factory() as client:
        shown = await _logged_tracebacks(client)

    for message in shown:
        assert 'File "test_tracebacks.py"' in message
        assert THIS_DIR not in message
        for line in message.splitlines():
            if line.strip().startswith('File "'):
                assert "/" not in line.split('"')[1], line


async def test_logged_tracebacks_show_full_paths_when_configured(
    registry: type[TaskRegistry], client_factory: ClientFactory
) -> None:
    _register_logging(registry)

    async with client_factory(expose_traceback_paths=True) as client:
        shown = await _logged_tracebacks(client)

    for message in shown:
        assert f'File "{THIS_FILE}"' in message
