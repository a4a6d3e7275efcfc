"""Job lists over a long history: a status-filtered page walks an index (no sort of the
whole table), the total is a bounded count, and list reads run off the event loop."""

from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Connection

from app.core.deps import get_list_session
from app.db.database import Database
from app.jobs.models import JobStatus
from app.jobs.repository import JobRepository
from tests.conftest import ClientFactory
from tests.jobs.helpers import insert_job


async def _plans_of_list_page(database: Database, **filters: Any) -> list[str]:
    """The SQLite query plans of the statements one `list_page` call runs."""
    statements: list[tuple[str, Any]] = []

    def capture(conn: Connection, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    engine = database.task_engine.sync_engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        async with database.session() as session:
            await JobRepository(session).list_page(
                limit=50, offset=0, max_bytes=1 << 20, count_max=10_000, **filters
            )
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    plans = []
    async with database.session() as session:
        connection = await session.connection()
        for statement, parameters in statements:
            rows = await connection.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {statement}", tuple(parameters)
            )
            plans.append(" | ".join(str(row[-1]) for row in rows))
    return plans


@pytest.mark.parametrize(
    "filters",
    [
        {"status": "completed", "task_name": None},
        {"status": None, "task_name": "t1"},
        {"status": None, "task_name": None},
    ],
)
async def test_list_statements_never_sort_the_table(
    sqlite_database_url: str, filters: dict[str, Any]
) -> None:
    database = Database(sqlite_database_url)
    try:
        for n in range(3):
            await insert_job(database, task_name=f"t{n}", status=JobStatus.COMPLETED)
        plans = await _plans_of_list_page(database, **filters)
    finally:
        await database.dispose()

    assert len(plans) == 3  # sizes, rows, count
    for plan in plans:
        assert "TEMP B-TREE" not in plan, plan
    if filters["status"]:
        assert all("ix_jobs_status_id" in plan for plan in (plans[0], plans[2])), plans


async def test_the_total_is_counted_up_to_a_bound_past_the_page(
    client_factory: ClientFactory, database: Database
) -> None:
    for _ in range(20):
        await insert_job(database, status=JobStatus.COMPLETED)
    async with client_factory(run_worker=False, page_count_max=5) as client:
        first = (await client.get("/api/v1/jobs", params={"limit": 2})).json()
        later = (await client.get("/api/v1/jobs", params={"limit": 2, "offset": 14})).json()
        filtered = (
            await client.get("/api/v1/jobs", params={"limit": 2, "status": "completed"})
        ).json()

    # 2 on the page + at most 5 past it: "at least 7".
    assert (len(first["items"]), first["total"]) == (2, 7)
    assert filtered["total"] == 7
    # Near the end the count is exact.
    assert later["total"] == 20


async def test_list_sessions_use_the_engine_off_the_loop(database: Database) -> None:
    async with asynccontextmanager(get_list_session)(database) as session:
        assert session.get_bind() is database.task_engine.sync_engine
    if database.is_sqlite:
        assert database.task_engine is not database.engine
        assert database.task_engine.dialect.driver == "aiosqlite"
