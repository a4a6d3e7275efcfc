"""The dashboard in a real headless chromium against a real server process.

Each test saves screenshots of the pages it visits under its tmp_path (`screenshots/`).
"""

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, WebDriverException
from selenium.webdriver.common.alert import Alert
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.e2e.conftest import ServerFactory, ServerProcess, execute, wait_job

pytestmark = pytest.mark.e2e

UI_TASKS = {"TASKEXEC_TASK_MODULES": "tests.ui.tasks"}
WAIT = 20.0


def ui_server(server_factory: ServerFactory, **env: str) -> ServerProcess:
    return server_factory(env={**UI_TASKS, **env})


def wait_for(driver: webdriver.Chrome, condition: Callable[[webdriver.Chrome], object]) -> object:
    """Wait for the condition. The page changes under it (htmx swaps, a form's redirect), so a
    lookup that hits a node on its way out is tried again: chromedriver reports that as a stale
    element, or as an inspector error ("Node with given id does not belong to the document")."""
    wait = WebDriverWait(
        driver, WAIT, poll_frequency=0.05, ignored_exceptions=(WebDriverException,)
    )
    return wait.until(condition)


def status_text(driver: webdriver.Chrome) -> str:
    text = driver.execute_script("return document.getElementById('status-badge').textContent")
    return str(text).strip()


def shoot(driver: webdriver.Chrome, folder: Path, name: str) -> Path:
    """A screenshot of the whole page, beyond the window's height."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 6000)}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {"format": "png", "captureBeyondViewport": True, "clip": {**clip, "scale": 1}},
    )
    path = folder / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def no_page_errors(driver: webdriver.Chrome) -> None:
    """Nothing on the page failed to load or threw (favicon aside)."""
    problems = [
        entry["message"]
        for entry in driver.get_log("browser")  # type: ignore[no-untyped-call]
        if entry["level"] == "SEVERE" and "favicon.ico" not in entry["message"]
    ]
    assert problems == []


def test_every_page_renders(
    server_factory: ServerFactory, browser: webdriver.Chrome, screenshots: Path, tmp_path: Path
) -> None:
    server = ui_server(server_factory)
    release = tmp_path / "release"
    with server.client() as client:
        done = execute(client, "describe", {"name": "a", "count": 1})
        second = execute(client, "describe", {"name": "b", "count": 2, "items": [1]})
        wait_job(client, done)
        wait_job(client, second)
        running = execute(client, "hold", {"release": str(release)})
        schedule = {"task_name": "describe", "params": {"name": "s", "count": 1}}
        made = client.post("/api/v1/schedules", json={**schedule, "cron": "*/5 * * * 1-5"})
        assert made.status_code == 201
    pages = {
        "overview": ("/ui", "Overview"),
        "jobs": ("/ui/jobs", "Jobs"),
        "job": (f"/ui/jobs/{done}", "describe"),
        "job-running": (f"/ui/jobs/{running}", "hold"),
        "tasks": ("/ui/tasks", "Tasks"),
        "task": ("/ui/tasks/describe", "describe"),
        "schedules": ("/ui/schedules", "Schedules"),
    }
    try:
        for name, (path, heading) in pages.items():
            browser.get(server.base_url + path)
            assert heading in browser.find_element(By.TAG_NAME, "h1").text
            assert shoot(browser, screenshots, name).stat().st_size > 10_000
            no_page_errors(browser)
        # A phone-sized window: no page scrolls sideways.
        # (Headless windows are at least 500 px wide: emulate the phone's screen instead.)
        phone = {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", phone)
        for name, (path, _) in pages.items():
            browser.get(server.base_url + path)
            overflow = browser.execute_script(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{path} is {overflow}px too wide on a phone"
            shoot(browser, screenshots, f"{name}-phone")
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        # The overview counts what is in the database.
        browser.get(server.base_url + "/ui")
        completed = browser.find_element(By.CSS_SELECTOR, '[data-status="completed"]')
        assert completed.text == "2"
    finally:
        release.touch()


def test_run_a_task_from_its_form_and_watch_it_finish_live(
    server_factory: ServerFactory, browser: webdriver.Chrome, screenshots: Path, tmp_path: Path
) -> None:
    server = ui_server(server_factory)
    release = tmp_path / "release"
    browser.get(server.base_url + "/ui/tasks/hold")
    browser.find_element(By.ID, "p-release").send_keys(str(release))
    lines = browser.find_element(By.ID, "p-lines")
    lines.clear()
    lines.send_keys("4")
    shoot(browser, screenshots, "task-form-filled")
    browser.find_element(By.ID, "run-submit").click()

    wait_for(browser, ec.url_matches(r"/ui/jobs/[0-9A-Z]{26}$"))
    job_id = browser.current_url.rsplit("/", 1)[1]
    wait_for(browser, lambda d: status_text(d) == "running")
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#log li")) >= 4)
    shoot(browser, screenshots, "job-running-live")
    page = browser.find_element(By.TAG_NAME, "html")

    release.touch()

    # The same document (no reload) shows the end: status, result, the last log line.
    wait_for(browser, lambda d: status_text(d) == "completed")
    wait_for(browser, lambda d: d.find_elements(By.ID, "result"))
    assert page == browser.find_element(By.TAG_NAME, "html")
    assert '"lines": 4' in browser.find_element(By.ID, "result").text
    log = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#log li")]
    assert log[-1].endswith("released")
    assert any("line 4 of 4" in line for line in log)
    assert browser.find_element(By.ID, "progress-bar").get_attribute("value") is not None
    assert browser.find_elements(By.ID, "cancel-job") == []
    shoot(browser, screenshots, "job-completed-live")
    with server.client() as client:
        assert wait_job(client, job_id)["status"] == "completed"


def test_form_types_reach_the_task(
    server_factory: ServerFactory, browser: webdriver.Chrome, screenshots: Path
) -> None:
    server = ui_server(server_factory)
    browser.get(server.base_url + "/ui/tasks/describe")
    browser.find_element(By.ID, "p-name").send_keys("ada")
    browser.find_element(By.ID, "p-count").send_keys("3")
    ratio = browser.find_element(By.ID, "p-ratio")
    ratio.clear()
    ratio.send_keys("0.25")
    browser.find_element(By.ID, "p-loud").click()
    Select(browser.find_element(By.ID, "p-color")).select_by_visible_text("blue")
    items = browser.find_element(By.ID, "p-items")
    items.clear()
    items.send_keys("[1, 2, 3]")
    browser.find_element(By.ID, "run-submit").click()

    wait_for(browser, lambda d: d.find_elements(By.ID, "result"))
    result = json.loads(browser.find_element(By.ID, "result").text)
    assert {key: result[key] for key in ("name", "count", "ratio", "loud", "color", "items")} == {
        "name": "ADA",
        "count": 3,
        "ratio": 0.25,
        "loud": True,
        "color": "blue",
        "items": [1, 2, 3],
    }


def test_bad_params_are_shown_on_the_form_and_nothing_is_queued(
    server_factory: ServerFactory, browser: webdriver.Chrome, screenshots: Path
) -> None:
    server = ui_server(server_factory)
    browser.get(server.base_url + "/ui/tasks/describe")
    browser.find_element(By.ID, "p-name").send_keys("ada")
    # The browser's own check would stop an empty required field; a JSON error it cannot see.
    browser.find_element(By.ID, "p-count").send_keys("2")
    items = browser.find_element(By.ID, "p-items")
    items.clear()
    items.send_keys("[1, 2")
    browser.find_element(By.ID, "run-submit").click()

    errors = wait_for(browser, lambda d: d.find_element(By.ID, "run-errors"))
    assert isinstance(errors, WebElement)
    wait_for(browser, lambda d: "items" in d.find_element(By.ID, "run-errors").text)
    assert "not valid JSON" in browser.find_element(By.ID, "run-errors").text
    assert browser.current_url.endswith("/ui/tasks/describe")
    shoot(browser, screenshots, "task-form-errors")
    with server.client() as client:
        assert client.get("/api/v1/jobs").json()["total"] == 0


def test_cancel_a_running_job(
    server_factory: ServerFactory, browser: webdriver.Chrome, screenshots: Path, tmp_path: Path
) -> None:
    server = ui_server(server_factory)
    with server.client() as client:
        job_id = execute(client, "hold", {"release": str(tmp_path / "never"), "lines": 1})
        wait_job(client, job_id, statuses=frozenset({"running"}))
    browser.get(f"{server.base_url}/ui/jobs/{job_id}")
    assert status_text(browser) == "running"
    browser.find_element(By.ID, "cancel-job").click()

    wait_for(browser, lambda d: status_text(d) == "canceled")
    wait_for(browser, lambda d: d.find_elements(By.ID, "delete-job"))
    shoot(browser, screenshots, "job-canceled")
    with server.client() as client:
        assert wait_job(client, job_id)["status"] == "canceled"

    # Delete asks first; confirming removes the job and lands on the list.
    browser.find_element(By.ID, "delete-job").click()
    alert = wait_for(browser, ec.alert_is_present())
    assert isinstance(alert, Alert)
    alert.accept()
    wait_for(browser, ec.url_matches(r"/ui/jobs$"))
    with server.client() as client:
        assert client.get(f"/api/v1/jobs/{job_id}").status_code == 404


def test_run_again_queues_the_same_params(
    server_factory: ServerFactory, browser: webdriver.Chrome
) -> None:
    server = ui_server(server_factory)
    with server.client() as client:
        first = execute(client, "describe", {"name": "x", "count": 7})
        wait_job(client, first)
    browser.get(f"{server.base_url}/ui/jobs/{first}")
    browser.find_element(By.ID, "rerun-job").click()
    wait_for(browser, lambda d: d.current_url.rsplit("/", 1)[1] not in (first, f"{first}"))
    second = browser.current_url.rsplit("/", 1)[1]
    with server.client() as client:
        job = wait_job(client, second)
    assert job["params"] == {"name": "x", "count": 7}
    assert job["status"] == "completed"


def test_jobs_list_filters_pages_and_goes_live(
    server_factory: ServerFactory, browser: webdriver.Chrome, screenshots: Path
) -> None:
    server = ui_server(server_factory)
    with server.client() as client:
        ids = [execute(client, "describe", {"name": str(n), "count": n}) for n in range(30)]
        for job_id in ids:
            wait_job(client, job_id)
    browser.get(server.base_url + "/ui/jobs?task=describe&limit=25")
    rows = browser.find_elements(By.CSS_SELECTOR, "#job-rows tr[data-job-id]")
    assert [row.get_attribute("data-job-id") for row in rows] == ids[::-1][:25]
    browser.find_element(By.LINK_TEXT, "Older →").click()
    wait_for(browser, ec.url_contains("before="))
    rows = browser.find_elements(By.CSS_SELECTOR, "#job-rows tr[data-job-id]")
    assert [row.get_attribute("data-job-id") for row in rows] == ids[::-1][25:]
    assert "task=describe" in browser.current_url
    browser.find_element(By.LINK_TEXT, "← Newer").click()
    wait_for(browser, ec.url_contains("after="))
    rows = browser.find_elements(By.CSS_SELECTOR, "#job-rows tr[data-job-id]")
    assert [row.get_attribute("data-job-id") for row in rows] == ids[::-1][:25]

    # The first page picks up a new job by itself.
    browser.get(server.base_url + "/ui/jobs?task=describe&limit=25")
    with server.client() as client:
        newest = execute(client, "describe", {"name": "new", "count": 1})
    wait_for(
        browser,
        lambda d: (
            d.find_element(By.CSS_SELECTOR, "#job-rows tr[data-job-id]").get_attribute(
                "data-job-id"
            )
            == newest
        ),
    )
    # Keyboard focus on a row survives the refreshes.
    browser.execute_script(
        "window.swaps = 0;"
        "document.body.addEventListener('htmx:afterSwap', () => { window.swaps += 1; });"
        f"document.getElementById('row-{ids[-3]}').focus();"
    )
    wait_for(browser, lambda d: d.execute_script("return window.swaps") >= 2)
    assert browser.execute_script("return document.activeElement.id") == f"row-{ids[-3]}"
    Select(browser.find_element(By.ID, "f-status")).select_by_visible_text("failed")
    browser.find_element(By.XPATH, "//button[text()='Apply']").click()
    wait_for(browser, ec.url_contains("status=failed"))
    assert browser.find_elements(By.CSS_SELECTOR, "#job-rows tr[data-job-id]") == []
    shoot(browser, screenshots, "jobs-filtered-empty")


def test_log_in_with_a_key(
    server_factory: ServerFactory, browser: webdriver.Chrome, screenshots: Path, tmp_path: Path
) -> None:
    server = ui_server(server_factory, TASKEXEC_API_KEYS="secret-one,secret-two")
    browser.get(server.base_url + "/ui/tasks/describe")
    wait_for(browser, ec.url_contains("/ui/login"))
    shoot(browser, screenshots, "login")
    browser.find_element(By.ID, "key").send_keys("wrong")
    browser.find_element(By.XPATH, "//button[text()='Log in']").click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "login-error"))
    shoot(browser, screenshots, "login-refused")

    browser.find_element(By.ID, "key").send_keys("secret-two")
    browser.find_element(By.XPATH, "//button[text()='Log in']").click()
    wait_for(browser, ec.url_matches(r"/ui/tasks/describe$"))
    cookie = browser.get_cookie("taskexec_ui")
    assert cookie is not None
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert "secret" not in cookie["value"]

    # The dashboard's own actions work with keys on: run from the form, watch it, cancel one.
    browser.find_element(By.ID, "p-name").send_keys("key")
    browser.find_element(By.ID, "p-count").send_keys("1")
    browser.find_element(By.ID, "run-submit").click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "result"))
    assert status_text(browser) == "completed"
    with server.client(headers={"Authorization": "Bearer secret-one"}) as client:
        held = execute(client, "hold", {"release": str(tmp_path / "never"), "lines": 1})
        wait_job(client, held, statuses=frozenset({"running"}))
    browser.get(f"{server.base_url}/ui/jobs/{held}")
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#log li")) >= 1)
    browser.find_element(By.ID, "cancel-job").click()
    wait_for(browser, lambda d: status_text(d) == "canceled")

    browser.find_element(By.XPATH, "//button[text()='Log out']").click()
    wait_for(browser, ec.url_contains("/ui/login"))
    browser.get(server.base_url + "/ui")
    wait_for(browser, ec.url_contains("/ui/login"))
    with pytest.raises(NoSuchElementException):
        browser.find_element(By.ID, "overview-live")


def test_swagger_ui_shows_a_typed_form_per_task(
    server_factory: ServerFactory, browser: webdriver.Chrome, screenshots: Path
) -> None:
    server = ui_server(server_factory)
    browser.get(server.base_url + "/docs")
    path = "/api/v1/tasks/describe/$execute"
    summary = wait_for(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, f'.opblock-summary-path[data-path="{path}"]'),
    )
    assert isinstance(summary, WebElement)
    summary.click()
    block = summary.find_element(By.XPATH, "ancestor::div[contains(@class, 'opblock ')]")
    wait_for(browser, lambda d: "Echo every kind of parameter back" in block.text)
    block.find_element(By.CSS_SELECTOR, "button.try-out__btn").click()
    body = wait_for(
        browser, lambda d: block.find_element(By.CSS_SELECTOR, "textarea.body-param__text")
    )
    assert isinstance(body, WebElement)
    example = json.loads(body.get_attribute("value") or "")
    assert example["params"] == {
        "name": "text",
        "count": 0,
        "ratio": 0.5,
        "loud": False,
        "color": "red",
        "items": None,
    }
    shoot(browser, screenshots, "swagger-typed-form")
    block.find_element(By.CSS_SELECTOR, "button.execute").click()
    status = wait_for(
        browser,
        lambda d: block.find_element(
            By.CSS_SELECTOR, ".live-responses-table tr.response .response-col_status"
        ),
    )
    assert isinstance(status, WebElement)
    assert status.text.strip().startswith("202")
