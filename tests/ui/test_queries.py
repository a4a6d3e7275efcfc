"""The dashboard's read-only queries, on SQLite and PostgreSQL."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from app.core.clock import new_id
from app.db.database import Database
from app.ui import queries
from app.ui.queries import JobFilter, job_page, ulid_floor
from app.workers.models import WorkerRecord
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


async def add_workers(database: Database, now: datetime) -> None:
    def worker(name: str, seen: timedelta, **state: object) -> WorkerRecord:
        return WorkerRecord(
            id=f"{name}:1:x",
            host=name,
            pid=1,
            tasks=["t"],
            started_at=now - timedelta(hours=1) + timedelta(seconds=len(name)),
            last_seen_at=now - seen,
            running=int(str(state.pop("running", 0))),
            stopped_at=state.get("stopped_at"),
            stop_reason=state.get("stop_reason"),
        )

    async with database.transaction() as session:
        session.add_all(
            [
                worker("alive", timedelta(seconds=2), running=3),
                worker("stopped-host", timedelta(minutes=5), stopped_at=now, stop_reason="stopped"),
                worker("dead", timedelta(minutes=9), stopped_at=now, stop_reason="expired"),
                worker("quiet-one", timedelta(minutes=2)),  # silent, not yet found dead
            ]
        )


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
        data = await queries.overview(session, NOW, count_cap=2, worker_timeout=60)

    assert data.counts == {
        "pending": 2,
        "running": 2,
        "waiting": 0,
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
    # No worker row yet: the panel says so (it no longer guesses from running jobs).
    assert data.workers == []
    assert [r.id for r in data.running] == [rows[8]["id"], rows[7]["id"], rows[6]["id"]]
    assert [r.id for r in data.failures] == [rows[2]["id"]]


async def test_overview_reads_the_workers_table_live_ones_first(database: Database) -> None:
    await add_workers(database, NOW)

    async with database.read_session() as session:
        data = await queries.overview(session, NOW, count_cap=10, worker_timeout=60)

    # Live first; then the others, newest start first (a longer name started later).
    assert [(w.host, w.alive, w.stop_reason, w.running) for w in data.workers] == [
        ("alive", True, None, 3),
        ("stopped-host", False, "stopped", 0),
        ("quiet-one", False, None, 0),
        ("dead", False, "expired", 0),
    ]
    assert data.workers[0].last_seen_at == NOW - timedelta(seconds=2)


def flow_rows() -> list[dict[str, Any]]:
    """A flow (root, three children, two grandchildren under the first child) between two
    unrelated jobs; children's ids are not in spawn order, as the flow store makes them."""
    at = NOW - timedelta(minutes=30)
    root = job_row(1, at, task="parent", status="running")
    root_id = root["id"]

    def child(n: int, parent: object, index: int, status: str) -> dict[str, Any]:
        return job_row(
            n,
            at,
            task="child",
            status=status,
            parent_id=parent,
            root_id=root_id,
            map_index=index,
            child_key=f"#0[{index}]",
        )

    first = child(9, root_id, 0, "waiting")
    rows = [
        job_row(0, at - timedelta(minutes=1), task="other"),
        {**root, "parent_id": None, "root_id": None, "map_index": None, "child_key": None},
        first,
        child(5, root_id, 1, "completed"),
        child(7, root_id, 2, "failed"),
        child(3, first["id"], 0, "completed"),
        child(4, first["id"], 1, "pending"),
        job_row(2, at + timedelta(minutes=1), task="other"),
    ]
    for row in rows:
        for column in ("parent_id", "root_id", "map_index", "child_key"):
            row.setdefault(column, None)
    return rows


async def test_parent_and_root_filters(database: Database) -> None:
    rows = flow_rows()
    await insert_jobs(database, rows)
    root_id, first_id = rows[1]["id"], rows[2]["id"]

    def ids(page: queries.JobPage) -> list[str]:
        return [r.id for r in page.rows]

    def newest(keep: Callable[[dict[str, Any]], bool]) -> list[str]:
        return sorted((r["id"] for r in rows if keep(r)), reverse=True)

    children = await page_ids(database, JobFilter(parent_id=str(root_id)), limit=50)
    assert ids(children) == newest(lambda r: r["parent_id"] == root_id)
    assert {r.map_index for r in children.rows} == {0, 1, 2}

    flow = newest(lambda r: r["root_id"] == root_id or r["id"] == root_id)
    assert len(flow) == 6
    whole = await page_ids(database, JobFilter(root_id=str(root_id)), limit=50)
    assert ids(whole) == flow

    # Pages walk the merged flow (the root's own row and its descendants) both ways.
    first_page = await page_ids(database, JobFilter(root_id=str(root_id)), limit=4)
    assert ids(first_page) == flow[:4]
    second = await page_ids(
        database, JobFilter(root_id=str(root_id)), limit=4, before=first_page.older
    )
    assert ids(second) == flow[4:]
    assert second.older is None
    back = await page_ids(database, JobFilter(root_id=str(root_id)), limit=4, after=second.newer)
    assert ids(back) == flow[:4]

    # Combined with the other filters.
    failed = await page_ids(database, JobFilter(root_id=str(root_id), status="failed"), limit=50)
    assert ids(failed) == newest(lambda r: r["status"] == "failed")
    parents = await page_ids(
        database, JobFilter(root_id=str(root_id), task_names=["parent", "other"]), limit=50
    )
    assert ids(parents) == [root_id]
    grandchildren = await page_ids(
        database, JobFilter(parent_id=str(first_id), status="pending"), limit=50
    )
    assert ids(grandchildren) == newest(
        lambda r: r["parent_id"] == first_id and r["status"] == "pending"
    )
    nothing = await page_ids(database, JobFilter(parent_id=str(rows[0]["id"])), limit=50)
    assert nothing.rows == []
