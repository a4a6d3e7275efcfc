"""The schedules page, flows and the workers panel in a real headless chromium.

Screenshots of each page, in the light and the dark scheme, go under the test's tmp_path.
"""

from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.alert import Alert
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec

from tests.e2e.conftest import ServerFactory, execute, wait_job
from tests.ui.test_browser import UI_TASKS, no_page_errors, shoot, status_text, ui_server, wait_for

pytestmark = pytest.mark.e2e


def shoot_both(driver: webdriver.Chrome, folder: Path, name: str) -> None:
    """The page as it is (light), then in the dark scheme; the page is left light."""
    assert shoot(driver, folder, name).stat().st_size > 10_000
    dark = {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", dark)
    try:
        background = driver.execute_script("return getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(13, 17, 23)"  # the dark scheme's --bg
        shoot(driver, folder, f"{name}-dark")
    finally:
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})


def state_of(driver: webdriver.Chrome, schedule_id: str) -> str:
    row = driver.find_element(By.ID, f"schedule-{schedule_id}")
    return str(row.find_element(By.CSS_SELECTOR, "[data-state]").text)


def test_schedules_page_pauses_resumes_fires_and_links_the_jobs_it_made(
    server_factory: ServerFactory, browser: webdriver.Chrome, screenshots: Path, tmp_path: Path
) -> None:
    server = ui_server(server_factory)
    with server.client() as client:
        made = {"task_name": "describe", "params": {"name": "s", "count": 1}}
        hourly = client.post("/api/v1/schedules", json={**made, "interval_seconds": 3600})
        cron = client.post(
            "/api/v1/schedules", json={**made, "cron": "30 2 * * 1-5", "timezone": "Europe/Paris"}
        )
        assert hourly.status_code == cron.status_code == 201
    schedule_id, cron_id = hourly.json()["id"], cron.json()["id"]

    browser.get(server.base_url + "/ui")
    browser.find_element(By.LINK_TEXT, "Schedules").click()
    wait_for(browser, ec.url_matches(r"/ui/schedules$"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#schedule-rows tr[data-schedule-id]")
    assert [row.get_attribute("data-schedule-id") for row in rows] == [cron_id, schedule_id]
    cron_row = browser.find_element(By.ID, f"schedule-{cron_id}").text
    assert "30 2 * * 1-5" in cron_row
    assert "Europe/Paris" in cron_row
    assert "every 1.0 h" in browser.find_element(By.ID, f"schedule-{schedule_id}").text
    assert state_of(browser, schedule_id) == "enabled"
    assert "never" in browser.find_element(By.ID, f"schedule-{schedule_id}").text
    no_page_errors(browser)
    shoot_both(browser, screenshots, "schedules")

    browser.find_element(By.ID, f"pause-{schedule_id}").click()
    wait_for(browser, lambda d: state_of(d, schedule_id) == "paused")
    with server.client() as client:
        assert client.get(f"/api/v1/schedules/{schedule_id}").json()["enabled"] is False
    browser.find_element(By.ID, f"resume-{schedule_id}").click()
    wait_for(browser, lambda d: state_of(d, schedule_id) == "enabled")

    browser.find_element(By.ID, f"trigger-{schedule_id}").click()
    link = wait_for(browser, lambda d: d.find_element(By.ID, f"last-job-{schedule_id}"))
    job_id = str(link.get_attribute("title"))  # type: ignore[attr-defined]
    with server.client() as client:
        job = wait_job(client, job_id)
    assert (job["task_name"], job["params"]) == ("describe", {"name": "s", "count": 1})
    shoot(browser, screenshots, "schedules-fired")
    browser.find_element(By.ID, f"last-job-{schedule_id}").click()
    wait_for(browser, ec.url_matches(rf"/ui/jobs/{job_id}$"))
    assert "describe" in browser.find_element(By.TAG_NAME, "h1").text

    browser.back()
    browser.find_element(By.ID, f"fires-{schedule_id}").click()
    wait_for(browser, ec.url_contains(f"schedule={schedule_id}"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#job-rows tr[data-job-id]")
    assert [row.get_attribute("data-job-id") for row in rows] == [job_id]
    assert schedule_id in browser.find_element(By.ID, "jobs-scope").text

    browser.get(server.base_url + "/ui/schedules")
    browser.find_element(By.ID, f"delete-{schedule_id}").click()
    alert = wait_for(browser, ec.alert_is_present())
    assert isinstance(alert, Alert)
    alert.accept()
    wait_for(browser, lambda d: not d.find_elements(By.ID, f"schedule-{schedule_id}"))
    with server.client() as client:
        assert client.get(f"/api/v1/schedules/{schedule_id}").status_code == 404
        assert client.get(f"/api/v1/jobs/{job_id}").status_code == 200  # its job stays


def child_statuses(driver: webdriver.Chrome) -> list[str]:
    script = (
        "return Array.from(document.querySelectorAll('#children tr'))"
        ".map(tr => tr.querySelector('.badge').textContent)"
    )
    return [str(status) for status in driver.execute_script(script)]


def row_ids(driver: webdriver.Chrome) -> list[str]:
    rows = driver.find_elements(By.CSS_SELECTOR, "#job-rows tr[data-job-id]")
    return [str(row.get_attribute("data-job-id")) for row in rows]


def test_a_flow_tree_goes_live_and_filters_the_jobs_list(
    server_factory: ServerFactory, browser: webdriver.Chrome, screenshots: Path, tmp_path: Path
) -> None:
    server = ui_server(server_factory)
    release = tmp_path / "release"
    with server.client() as client:
        other = execute(client, "describe", {"name": "x", "count": 1})
        root = execute(client, "fan_out", {"count": 3, "release": str(release)})
    try:
        browser.get(f"{server.base_url}/ui/jobs/{root}")
        # The children appear, then finish, in the same document.
        # The flow panel is swapped in place as it refreshes: read it inside the wait, which
        # re-reads an element replaced between its lookup and its text.
        wait_for(
            browser,
            lambda d: (
                len(child_statuses(d)) == 3
                and d.find_element(By.ID, "child-count").text == "3"
                and "this job" in d.find_element(By.ID, "job-flow").text
            ),
        )
        page = browser.find_element(By.TAG_NAME, "html")
        shoot_both(browser, screenshots, "job-flow-running")
    finally:
        release.touch()
    wait_for(browser, lambda d: child_statuses(d) == ["completed"] * 3)
    wait_for(browser, lambda d: status_text(d) == "completed")
    assert page == browser.find_element(By.TAG_NAME, "html")
    assert browser.find_element(By.ID, "result").text == "5"  # 0 + 1 + 4
    shoot(browser, screenshots, "job-flow-completed")

    with server.client() as client:
        children = client.get("/api/v1/jobs", params={"parent_id": root}).json()["items"]
    first = next(child["id"] for child in children if child["map_index"] == 0)
    browser.find_element(By.CSS_SELECTOR, f'#children a[href="/ui/jobs/{first}"]').click()
    wait_for(browser, ec.url_matches(rf"/ui/jobs/{first}$"))
    assert browser.find_element(By.ID, "flow-parent").get_attribute("title") == root
    assert browser.find_element(By.ID, "flow-root").get_attribute("title") == root
    assert "Map index" in browser.find_element(By.ID, "job-flow").text
    shoot_both(browser, screenshots, "job-flow-child")
    browser.find_element(By.ID, "flow-all").click()
    wait_for(browser, ec.url_contains(f"root={root}"))
    expected = sorted([root, *(child["id"] for child in children)], reverse=True)
    assert row_ids(browser) == expected
    assert other not in row_ids(browser)

    # The filter form takes a parent id (any case) and keeps it in the URL.
    browser.get(server.base_url + "/ui/jobs")
    browser.find_element(By.ID, "f-parent").send_keys(root.lower())
    browser.find_element(By.XPATH, "//button[text()='Apply']").click()
    wait_for(browser, ec.url_contains("parent="))
    assert row_ids(browser) == sorted((child["id"] for child in children), reverse=True)
    assert browser.find_element(By.ID, "f-parent").get_attribute("value") == root
    no_page_errors(browser)
    shoot_both(browser, screenshots, "jobs-by-parent")


def test_workers_panel_reads_the_workers_table(
    server_factory: ServerFactory, browser: webdriver.Chrome, screenshots: Path, tmp_path: Path
) -> None:
    # A short lease beats often, so the running count follows within a second or two.
    server = server_factory(lease_seconds=3.0, env=UI_TASKS)
    release = tmp_path / "release"
    with server.client() as client:
        workers = client.get("/api/v1/workers").json()["items"]
        held = execute(client, "hold", {"release": str(release), "lines": 1})
        wait_job(client, held, statuses=frozenset({"running"}))
    assert len(workers) == 1
    worker = workers[0]
    try:
        browser.get(server.base_url + "/ui")
        row = f'#workers tr[data-worker-id="{worker["id"]}"]'
        cells = browser.find_element(By.CSS_SELECTOR, row).text
        assert f"{worker['host']}:{worker['pid']}" in cells
        state = browser.find_element(By.CSS_SELECTOR, f"{row} [data-state]")
        assert state.text == "alive"
        wait_for(
            browser,
            lambda d: d.find_element(By.CSS_SELECTOR, f"{row} td.num").text == "1",
        )
        assert " ago" in browser.find_element(By.CSS_SELECTOR, f"{row} td:nth-child(3)").text
        shoot_both(browser, screenshots, "overview-workers")
    finally:
        release.touch()
    with server.client() as client:
        wait_job(client, held)
    wait_for(browser, lambda d: d.find_element(By.CSS_SELECTOR, f"{row} td.num").text == "0")
