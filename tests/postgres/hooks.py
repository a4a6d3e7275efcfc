"""Hooks a `taskexec worker` process loads from `TASKEXEC_HOOKS=tests.postgres.hooks:hooks`.

Each call appends one line to the file `TASKEXEC_TEST_HOOK_LOG` names, so the test (another
process) sees which hooks ran, for which job, in which order.
"""

import os

from app.jobs.schemas import JobRead
from tests.postgres.tasks import append_line


class FileHooks:
    async def on_job_started(self, job: JobRead) -> None:
        append_line(os.environ["TASKEXEC_TEST_HOOK_LOG"], f"started {job.id}")

    async def on_job_finished(self, job: JobRead) -> None:
        append_line(os.environ["TASKEXEC_TEST_HOOK_LOG"], f"finished {job.id} {job.status}")


hooks = FileHooks()
