"""Hooks in a plain `taskexec worker` process, named by `TASKEXEC_HOOKS`, on PostgreSQL."""

from pathlib import Path

import pytest

from tests.helpers import poll_until
from tests.postgres.conftest import Postgres, Processes

pytestmark = pytest.mark.postgres


def test_a_worker_process_calls_the_hooks_taskexec_hooks_names(
    processes: Processes, pg: Postgres, tmp_path: Path
) -> None:
    log = tmp_path / "hooks.log"
    processes.worker(
        env={"TASKEXEC_HOOKS": "tests.postgres.hooks:hooks", "TASKEXEC_TEST_HOOK_LOG": str(log)}
    )
    [job_id] = pg.submit("pg_quick", [{"n": 1}])

    def both_called() -> bool:
        return log.exists() and len(log.read_text().splitlines()) >= 2

    poll_until(both_called, within=30, what="two hook calls")
    assert log.read_text().splitlines() == [f"started {job_id}", f"finished {job_id} completed"]
