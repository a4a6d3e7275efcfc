"""Swagger UI renders in a real (headless) browser from the package's own assets."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import ServerProcess

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium must be installed in CI (.ci/run installs it)")
        pytest.skip("chromium is not installed")
    return CHROMIUM


def render(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Load `url` headless with every outside connection refused, run its scripts."""
    return subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            # Anything not on this machine fails to resolve: the page must not need it.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--virtual-time-budget=15000",
            *extra,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_swagger_ui_renders_the_api_offline(server: ServerProcess, tmp_path: Path) -> None:
    result = render(f"{server.base_url}/docs", tmp_path / "profile", "--dump-dom")

    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    # Rendered by swagger-ui's JavaScript, from the spec: not in the static HTML.
    assert 'class="swagger-ui"' in dom
    assert "opblock" in dom
    assert "/api/v1/tasks/{name}/$execute" in dom
    assert "/api/v1/jobs/{job_id}/$stream" in dom


def test_swagger_ui_screenshot_is_drawn(server: ServerProcess, tmp_path: Path) -> None:
    shot = tmp_path / "docs.png"
    result = render(
        f"{server.base_url}/docs",
        tmp_path / "profile",
        f"--screenshot={shot}",
        "--window-size=1280,900",
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.exists()
    # A blank page compresses to a few KB; the rendered UI is far larger.
    assert shot.stat().st_size > 30_000
