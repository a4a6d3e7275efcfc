"""Fixtures of the dashboard's tests: an in-process app with the dashboard, the e2e server
fixtures, and a headless chromium driven by Selenium through Debian's `chromium-driver`, with
every host but 127.0.0.1 unresolvable."""

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from app.service.builder import ServiceBuilder
from app.service.schemas import ServiceInfo
from app.tasks.registry import TaskRegistry
from tests.conftest import make_settings, running_client
from tests.e2e.conftest import (  # noqa: F401  (fixtures and the failure-report hook)
    pytest_runtest_makereport,
    server,
    server_factory,
)
from tests.ui.helpers import UiClient

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def _require_browser() -> tuple[str, str]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver must be installed in CI (.ci/run does)")
        pytest.skip("chromium or chromedriver is not installed")
    return CHROMIUM, CHROMEDRIVER


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """Headless chromium; nothing but this machine resolves, so no page can reach the net."""
    binary, driver = _require_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(argument)
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    chrome.set_page_load_timeout(30)
    try:
        yield chrome
    finally:
        chrome.quit()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where a test saves its screenshots (under its tmp_path; never committed)."""
    path = tmp_path / "screenshots"
    path.mkdir()
    return path


def register_tasks(registry: type[TaskRegistry]) -> None:
    @registry.register("add", tags=["math"])
    def add(a: int, b: int = 1) -> int:
        """Add two integers."""
        return a + b

    @registry.register("fail")
    def fail() -> None:
        raise ValueError("nope")


@pytest.fixture
def ui_client(sqlite_database_url: str, registry: type[TaskRegistry]) -> UiClient:
    """`async with ui_client(**settings) as client`: the dashboard app, in process."""
    register_tasks(registry)

    def factory(**overrides: Any) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        settings = make_settings(sqlite_database_url, **overrides)
        app = (
            ServiceBuilder(info=ServiceInfo(display_name="ui test"), settings=settings)
            .with_health()
            .with_ui()
            .build()
        )
        return running_client(app)

    return factory


@pytest.fixture
async def client(ui_client: UiClient) -> AsyncIterator[httpx.AsyncClient]:
    async with ui_client() as client:
        yield client
