"""Settings come from `TASKEXEC_*` environment variables, with documented defaults."""

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.core.settings import Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No `TASKEXEC_*` variable from the outer environment leaks into these tests."""
    for name in list(os.environ):
        if name.upper().startswith("TASKEXEC_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    settings = Settings(_env_file=None)

    assert settings.database_url == "sqlite+aiosqlite:///./data/taskexec.db"
    assert settings.is_sqlite is True
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.task_modules == []
    assert settings.api_keys == []
    assert settings.auto_migrate is True
    assert settings.run_worker is True
    assert settings.load_examples is True
    assert settings.expose_traceback_paths is False
    assert settings.max_concurrency >= 1
    assert settings.page_limit_default == 50
    assert settings.page_limit_max == 500
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000


def test_default_database_is_a_file_under_data() -> None:
    url = Settings(_env_file=None).database_url

    path = url.removeprefix("sqlite+aiosqlite:///")
    assert path != url
    assert Path(path).parent == Path("data")


def test_scalar_values_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKEXEC_DATABASE_URL", "postgresql+asyncpg://u:p@db:5432/tasks")
    monkeypatch.setenv("TASKEXEC_MAX_CONCURRENCY", "7")
    monkeypatch.setenv("TASKEXEC_MAX_BODY_BYTES", "4096")
    monkeypatch.setenv("TASKEXEC_AUTO_MIGRATE", "false")
    monkeypatch.setenv("TASKEXEC_RUN_WORKER", "0")
    monkeypatch.setenv("TASKEXEC_LOAD_EXAMPLES", "no")
    monkeypatch.setenv("TASKEXEC_EXPOSE_TRACEBACK_PATHS", "true")
    monkeypatch.setenv("TASKEXEC_POLL_INTERVAL", "0.25")
    monkeypatch.setenv("TASKEXEC_PAGE_LIMIT_MAX", "20")
    monkeypatch.setenv("TASKEXEC_PORT", "9001")
    monkeypatch.setenv("TASKEXEC_LOG_LEVEL", "debug")

    settings = Settings(_env_file=None)

    assert settings.database_url == "postgresql+asyncpg://u:p@db:5432/tasks"
    assert settings.is_sqlite is False
    assert settings.max_concurrency == 7
    assert settings.max_body_bytes == 4096
    assert settings.auto_migrate is False
    assert settings.run_worker is False
    assert settings.load_examples is False
    assert settings.expose_traceback_paths is True
    assert settings.poll_interval == 0.25
    assert settings.page_limit_max == 20
    assert settings.port == 9001
    assert settings.log_level == "debug"


def test_lowercase_names_are_read_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("taskexec_max_concurrency", "3")

    assert Settings(_env_file=None).max_concurrency == 3


def test_task_modules_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKEXEC_TASK_MODULES", "myapp.tasks, other.tasks ,,third")

    assert Settings(_env_file=None).task_modules == ["myapp.tasks", "other.tasks", "third"]


def test_single_task_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKEXEC_TASK_MODULES", "only.module")

    assert Settings(_env_file=None).task_modules == ["only.module"]


def test_api_keys_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKEXEC_API_KEYS", "k1,k2 , k3")

    assert Settings(_env_file=None).api_keys == ["k1", "k2", "k3"]


def test_empty_lists_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKEXEC_API_KEYS", "")
    monkeypatch.setenv("TASKEXEC_TASK_MODULES", " , ")

    settings = Settings(_env_file=None)

    assert settings.api_keys == []
    assert settings.task_modules == []


def test_lists_can_be_given_in_code() -> None:
    settings = Settings(_env_file=None, task_modules=["a.b"], api_keys="x,y")  # type: ignore[arg-type]

    assert settings.task_modules == ["a.b"]
    assert settings.api_keys == ["x", "y"]


def test_keyword_arguments_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKEXEC_MAX_CONCURRENCY", "7")

    assert Settings(_env_file=None, max_concurrency=2).max_concurrency == 2


def test_env_file_is_read_when_asked(tmp_path: Path) -> None:
    env_file = tmp_path / "service.env"
    env_file.write_text("TASKEXEC_MAX_BODY_BYTES=2048\nTASKEXEC_API_KEYS=a,b\n")

    settings = Settings(_env_file=env_file)

    assert settings.max_body_bytes == 2048
    assert settings.api_keys == ["a", "b"]


def test_environment_is_not_read_without_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_BODY_BYTES", "4096")
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://elsewhere/db")

    settings = Settings(_env_file=None)

    assert settings.max_body_bytes == 1024 * 1024
    assert settings.database_url.startswith("sqlite")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TASKEXEC_MAX_CONCURRENCY", "0"),
        ("TASKEXEC_MAX_CONCURRENCY", "many"),
        ("TASKEXEC_MAX_BODY_BYTES", "10"),
        ("TASKEXEC_POLL_INTERVAL", "0"),
        ("TASKEXEC_PORT", "70000"),
        ("TASKEXEC_AUTO_MIGRATE", "perhaps"),
    ],
)
def test_invalid_values_are_rejected(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError):
        Settings(_env_file=None)


@pytest.mark.parametrize("value", [" , ", ",", " ,, , "])
def test_api_keys_that_name_no_key_are_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("TASKEXEC_API_KEYS", value)

    with pytest.raises(ValidationError, match="names no key"):
        Settings(_env_file=None)
