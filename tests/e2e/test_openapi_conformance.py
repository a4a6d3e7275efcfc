"""Schemathesis over the real server's `/openapi.json`, every check enabled: no server error,
only documented status codes and content types, responses that match their schemas,
schema-valid requests accepted and invalid ones refused. Bounded in examples and time."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import ServerFactory

pytestmark = pytest.mark.e2e

CONFIG = Path(__file__).with_name("schemathesis.toml")
RUN_TIMEOUT = 120


def test_schemathesis_finds_no_failure(server_factory: ServerFactory, tmp_path: Path) -> None:
    # A short long-poll bound keeps `?wait=` cases fast; the schema states the bound.
    server = server_factory(env={"TASKEXEC_MAX_WAIT_SECONDS": "0.5"})
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--no-color",
        "--config-file",
        str(CONFIG),
        "run",
        f"{server.base_url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        "10",
        "--seed",
        "20261129",
        "--request-timeout",
        "10",
    ]
    result = subprocess.run(
        command,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
