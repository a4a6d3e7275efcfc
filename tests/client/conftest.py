"""Fixtures of the client's tests: real servers (tests/e2e's), a TCP proxy between the client
and a server, and the client installed alone into its own virtual environment."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskexec_client import Client, RetryPolicy
from tests.client.proxy import TcpProxy
from tests.e2e.conftest import (
    REPO_ROOT,
    ServerFactory,
    ServerProcess,
    pytest_runtest_makereport,
    server_factory,
)

__all__ = ["pytest_runtest_makereport", "server_factory"]

CLIENT_DIR = REPO_ROOT / "clients" / "python"
TASK_MODULES = "tests.e2e.tasks,tests.e2e.live_tasks"
VENV_TIMEOUT = 300


@pytest.fixture
def live_server(server_factory: ServerFactory) -> ServerProcess:
    """A server with the e2e tasks and `live_steps` (logs and progress, released by a file)."""
    return server_factory(env={"TASKEXEC_TASK_MODULES": TASK_MODULES})


def fast_retries(attempts: int = 5) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, backoff=0.05, backoff_max=5.0)


@pytest.fixture
def client(live_server: ServerProcess) -> Iterator[Client]:
    with Client(live_server.base_url, retry=fast_retries()) as client:
        yield client


@pytest.fixture
def proxy_factory() -> Iterator[type[TcpProxy]]:
    proxies: list[TcpProxy] = []

    class Tracked(TcpProxy):
        def __init__(self, upstream_port: int) -> None:
            super().__init__(upstream_port)
            proxies.append(self)

    try:
        yield Tracked
    finally:
        for proxy in proxies:
            proxy.close()


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without Python paths or taskexec settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TASKEXEC_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment holding only `pip install clients/python` (and its httpx)."""
    root = tmp_path_factory.mktemp("client-venv") / "venv"
    steps = [
        [sys.executable, "-m", "venv", str(root)],
        [
            str(root / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            str(CLIENT_DIR),
        ],
    ]
    for step in steps:
        done = subprocess.run(
            step, capture_output=True, text=True, timeout=VENV_TIMEOUT, env=clean_env()
        )
        assert done.returncode == 0, f"{step} failed:\n{done.stdout}\n{done.stderr}"
    return root
