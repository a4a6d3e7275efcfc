"""The dashboard's read-only queries, on SQLite and PostgreSQL."""

from datetime import UTC, datetime, timedelta

from app.core.clock import new_id
from app.db.database import Database
from app.ui import queries
from app.ui.queries import JobFilter, job_page, ulid_floor
from tests.ui.helpers import insert_jobs, job_row

NOW = datetime(2026, 3, 1, 12, 30, 30, tzinfo=UTC)


def test_ulid_floor_orders_like_ids_made_at_that_time() -> None:
    before = ulid_floor(datetime.now(UTC) - timedelta(milliseconds=5))
    made = new_id()
    after = ulid_floor(datetime.now(UTC) + timedelta(milliseconds=5))

    assert before < made < after
    assert ulid_floor(datetime(1970, 1, 1, tzinfo=UTC)) == "0" * 26


async def page_ids(database: Database, where: JobFilter, **kwargs: object) -> queries.JobPage:
    async with database.read_session() as session:
        return await job_page(session, where, **kwargs)  # type: ignore[arg-type]


async def test_keyset_pages_cover_every_job_once_in_both_directions(database: Database) -> None:
    rows = [job_row(n, NOW - timedelta(seconds=n)) for n in range(23)]
    await insert_jobs(database, rows)
    newest_first = [row["id"] for row in sorted(rows, key=lambda r: r["id"], reverse=True)]

    seen: list[str] = []
    pages = []
    before = None
    while True:
        page = await page_ids(database, JobFilter(), limit=10, before=before)
        pages.append(page)
        seen += [row.id for row in page.rows]
        if page.older is None:
            break
        before = page.older
    assert seen == newest_first
    assert [len(p.rows) for p in pages] == [10, 10, 3]
    assert pages[0].newer is None
    assert pages[1].newer == newest_first[10]

    # Newer from the last page gives the middle page back, then the first.
    back = await page_ids(database, JobFilter(), limit=10, after=pages[2].newer)
    assert [row.id for row in back.rows] == newest_first[10:20]
    first = await page_ids(database, JobFilter(), limit=10, after=back.newer)
    assert [row.id for row in first.rows] == newest_first[:10]
    assert first.newer is None


async def test_filters_combine(database: Database) -> None:
    rows = [
        job_row(n, NOW - timedelta(minutes=n), task=f"t{n % 3}", status=status)
        for n, status in enumerate(["completed", "failed", "pending"] * 5)
    ]
    await insert_jobs(database, rows)

    def expect(keep: object) -> list[str]:
        assert callable(keep)
        return sorted((r["id"] for r in rows if keep(r)), reverse=True)

    failed = await page_ids(database, JobFilter(status="failed"), limit=50)
    assert [r.id for r in failed.rows] == expect(lambda r: r["status"] == "failed")

    two_tasks = await page_ids(database, JobFilter(task_names=["t0", "t2"]), limit=4)
    assert [r.id for r in two_tasks.rows] == expect(lambda r: r["task_name"] != "t1")[:4]
    assert two_tasks.older == two_tasks.rows[-1].id

    window = JobFilter(
        created_from=NOW - timedelta(minutes=5), created_to=NOW - timedelta(minutes=1)
    )
    in_window = await page_ids(database, window, limit=50)
    assert [r.id for r in in_window.rows] == expect(
        lambda r: NOW - timedelta(minutes=5) <= r["created_at"] < NOW - timedelta(minutes=1)
    )
    assert len(in_window.rows) == 4

    none = await page_ids(database, JobFilter(task_names=[]), limit=50)
    assert none.rows == []


async def test_overview_counts_rates_queue_and_workers(database: Database) -> None:
    rows = [
        job_row(0, NOW - timedelta(minutes=2), status="completed", seconds=1),
        job_row(1, NOW - timedelta(minutes=2), status="completed", seconds=2),
        job_row(2, NOW - timedelta(minutes=2), status="failed", seconds=3),
        job_row(3, NOW - timedelta(hours=2), status="completed"),  # outside the hour
        job_row(4, NOW - timedelta(minutes=10), status="pending"),
        job_row(5, NOW - timedelta(minutes=3), status="pending"),
        job_row(6, NOW - timedelta(seconds=30), status="running", worker="w1"),
        job_row(7, NOW - timedelta(seconds=20), status="running", worker="w1"),
        job_row(8, NOW - timedelta(seconds=10), status="canceling", worker="w2"),
    ]
    await insert_jobs(database, rows)

    async with database.read_session() as session:
        data = await queries.overview(session, NOW, count_cap=2)

    assert data.counts == {
        "pending": 2,
        "running": 2,
        "canceling": 1,
        "completed": 3,  # stopped at the cap + 1: shown as "2+"
        "failed": 1,
        "canceled": 0,
    }
    assert data.oldest_pending_at == NOW - timedelta(minutes=10)
    assert len(data.per_minute) == 60
    by_minute = {at: (done, failed) for at, done, failed in data.per_minute if done or failed}
    assert by_minute == {datetime(2026, 3, 1, 12, 28, tzinfo=UTC): (2, 1)}
    assert data.per_minute[-1][0] == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    assert [(w, n) for w, n, _ in data.workers] == [("w1", 2), ("w2", 1)]
    assert [r.id for r in data.running] == [rows[8]["id"], rows[7]["id"], rows[6]["id"]]
    assert [r.id for r in data.failures] == [rows[2]["id"]]
