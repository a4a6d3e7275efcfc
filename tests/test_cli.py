"""The `taskexec` command as operators meet it: one clear line per mistake, a non-zero exit,
nothing started or migrated when the port is taken, `--version`, and documented options."""

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import build_parser

REPO_ROOT = Path(__file__).resolve().parents[1]
RUN_TIMEOUT = 60


def run_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TASKEXEC_")}
    base.update(
        {
            "PYTHONPATH": str(REPO_ROOT),
            "TASKEXEC_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
            **env,
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=tmp_path,
        env=base,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The one error line, last on stderr (after at most a few ordinary log lines)."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if "error" in line.lower()]
    assert len(errors) == 1, result.stderr
    assert lines[-1] == errors[0]
    assert lines[-1].startswith("taskexec: error: ")
    assert len(lines) <= 4, result.stderr
    return lines[-1]


def test_api_keys_that_name_no_key_refuse_to_start(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "serve", "--port", "0", TASKEXEC_API_KEYS=" , ")

    assert result.returncode == 2
    line = one_line_error(result)
    assert "TASKEXEC_API_KEYS" in line
    assert not (tmp_path / "cli.db").exists()


def test_an_unknown_migration_revision_is_one_line(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "migrate", "bogus")

    assert result.returncode == 1
    assert "bogus" in one_line_error(result)


def test_a_task_module_that_cannot_be_imported_is_one_line(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "serve", "--port", "0", TASKEXEC_TASK_MODULES="no_such_tasks_module")

    assert result.returncode == 1
    line = one_line_error(result)
    assert "no_such_tasks_module" in line
    assert "PYTHONPATH" in line
    assert str(REPO_ROOT) in line
    # Nothing was started or migrated.
    assert not (tmp_path / "cli.db").exists()


def test_a_worker_with_a_task_module_that_cannot_be_imported_is_one_line(
    tmp_path: Path,
) -> None:
    result = run_cli(tmp_path, "worker", TASKEXEC_TASK_MODULES="no_such_tasks_module")

    assert result.returncode == 1
    assert "no_such_tasks_module" in one_line_error(result)


def test_a_busy_port_fails_before_migrating(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(tmp_path, "serve", "--host", "127.0.0.1", "--port", str(port))

    assert result.returncode == 1
    assert f"127.0.0.1:{port}" in one_line_error(result)
    assert not (tmp_path / "cli.db").exists()


def test_version(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "--version")

    assert result.returncode == 0
    assert result.stdout.strip() == "taskexec 0.1.0"


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        action
        for action in parser._actions
        if action.option_strings and action.dest not in {"help", "version"}
    ]


@pytest.mark.parametrize("command", ["serve", "migrate", "worker"])
def test_every_option_has_help_naming_its_setting(command: str) -> None:
    subparsers = next(
        action
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    parser = subparsers.choices[command]
    for action in _options(parser):
        assert action.help, f"{command} {action.option_strings} has no help"
        if action.dest != "downgrade":
            assert "TASKEXEC_" in action.help, f"{command} {action.option_strings}"
    for action in parser._actions:
        if not action.option_strings:
            assert action.help, f"{command} {action.dest} has no help"


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["worker"]])
@pytest.mark.parametrize(
    ("hooks", "reason"),
    [
        ("no_such_hooks_module:hooks", "No module named 'no_such_hooks_module'"),
        ("app.main:no_such_object", "no_such_object"),
        ("app.main:Settings", "a hooks object needs at least one of"),
    ],
)
def test_hooks_that_cannot_be_loaded_are_one_line(
    tmp_path: Path, command: list[str], hooks: str, reason: str
) -> None:
    result = run_cli(tmp_path, *command, TASKEXEC_HOOKS=hooks)

    assert result.returncode == 1
    line = one_line_error(result)
    assert "TASKEXEC_HOOKS" in line
    assert reason in line
    assert not (tmp_path / "cli.db").exists()


def test_hooks_that_are_not_module_colon_attribute_are_a_setting_error(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "worker", TASKEXEC_HOOKS="just_a_module")

    assert result.returncode == 2
    assert "TASKEXEC_HOOKS" in one_line_error(result)
