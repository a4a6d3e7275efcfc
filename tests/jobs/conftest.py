"""Fixtures of the runner tests: a small thread pool and the context of one attempt."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.core.clock import new_id
from app.jobs.context import JobContext


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(2, thread_name_prefix="runner-test")
    try:
        yield pool
    finally:
        pool.shutdown(wait=True)


@pytest.fixture
def context() -> JobContext:
    return JobContext(job_id=new_id(), task_name="t", attempt=1, max_attempts=1, params={})
