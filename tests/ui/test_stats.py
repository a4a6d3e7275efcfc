"""Per-task figures: capped counts and run-time percentiles, on SQLite and PostgreSQL."""

from datetime import UTC, datetime, timedelta

import pytest

from app.db.database import Database
from app.ui.stats import task_stats, tasks_stats
from tests.ui.helpers import insert_jobs, job_row

NOW = datetime(2026, 3, 1, 12, 30, 30, tzinfo=UTC)


async def test_task_stats_percentiles_of_the_newest_completed_runs(database: Database) -> None:
    rows = [
        job_row(n, NOW - timedelta(seconds=100 - n), task="t", seconds=float(n + 1))
        for n in range(20)
    ]
    rows.append(job_row(99, NOW, task="t", status="failed"))
    rows.append(job_row(98, NOW, task="other", seconds=500))
    await insert_jobs(database, rows)

    async with database.read_session() as session:
        stats = await task_stats(session, "t", count_cap=100, sample=10)
        none = await task_stats(session, "missing", count_cap=100, sample=10)

    assert stats.counts == {"pending": 0, "running": 0, "completed": 20, "failed": 1, "canceled": 0}
    # The newest 10 completed runs took 11..20 seconds.
    assert stats.sample == 10
    assert stats.p50 == pytest.approx(15.0, abs=1e-3)
    assert stats.p95 == pytest.approx(20.0, abs=1e-3)
    assert (none.sample, none.p50, none.p95) == (0, None, None)


async def test_stats_of_many_tasks_come_from_two_statements(database: Database) -> None:
    rows = [
        job_row(n, NOW - timedelta(seconds=n), task=f"t{n % 3}", seconds=float(n % 3 + 1))
        for n in range(30)
    ]
    rows.append(job_row(99, NOW, task="t1", status="pending"))
    await insert_jobs(database, rows)

    async with database.read_session() as session:
        stats = await tasks_stats(session, ["t0", "t1", "t2", "none"], count_cap=5, sample=100)

    assert stats["t1"].counts == {
        "pending": 1,
        "running": 0,
        "completed": 6,  # 10, stopped at the cap + 1
        "failed": 0,
        "canceled": 0,
    }
    assert [stats[t].p50 for t in ("t0", "t1", "t2")] == pytest.approx([1.0, 2.0, 3.0], abs=1e-3)
    assert stats["t2"].sample == 10
    assert (stats["none"].sample, stats["none"].counts["completed"]) == (0, 0)
