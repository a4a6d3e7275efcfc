"""`WorkerRepository` on both backends: upsert, heartbeat, expiry, pruning, pages."""

from app.db.database import Database
from app.workers.repository import WorkerRepository
from tests.jobs.helpers import ago
from tests.workers.helpers import add_worker, fetch_worker


async def test_register_inserts_then_revives_the_same_id(database: Database) -> None:
    first = await add_worker(database, "h:1:1-a", started_at=ago(100), stopped_at=ago(50))
    await add_worker(database, "h:1:1-a", started_at=ago(10), running=3)

    stored = await fetch_worker(database, "h:1:1-a")
    assert stored is not None
    # The first start is kept; the rest is the new registration's.
    assert stored.started_at == first.started_at
    assert (stored.running, stored.stopped_at, stored.stop_reason) == (3, None, None)


async def test_beat_refreshes_a_row_and_reports_a_missing_one(database: Database) -> None:
    await add_worker(database, "h:1:1-a", last_seen_at=ago(100), stopped_at=ago(5))
    now = ago(0)
    async with database.transaction() as session:
        repository = WorkerRepository(session)
        assert await repository.beat("h:1:1-a", now, 2) is True
        assert await repository.beat("h:9:9-z", now, 2) is False
    stored = await fetch_worker(database, "h:1:1-a")
    assert stored is not None
    assert (stored.last_seen_at, stored.running, stored.stopped_at) == (now, 2, None)
    assert await fetch_worker(database, "h:9:9-z") is None


async def test_expired_lists_silent_unstopped_workers_but_the_caller(database: Database) -> None:
    await add_worker(database, "silent", last_seen_at=ago(60))
    await add_worker(database, "me", last_seen_at=ago(60))
    await add_worker(database, "recent", last_seen_at=ago(1))
    await add_worker(database, "stopped", last_seen_at=ago(60), stopped_at=ago(30))

    async with database.session() as session:
        assert await WorkerRepository(session).expired(ago(10), besides="me") == ["silent"]


async def test_mark_stopped_skips_a_worker_seen_since_the_cutoff(database: Database) -> None:
    await add_worker(database, "silent", last_seen_at=ago(60), running=4)
    await add_worker(database, "back", last_seen_at=ago(1))
    async with database.transaction() as session:
        marked = await WorkerRepository(session).mark_stopped(
            ["silent", "back"], ago(0), "expired", seen_before=ago(10)
        )
    assert marked == 1
    silent = await fetch_worker(database, "silent")
    back = await fetch_worker(database, "back")
    assert silent is not None
    assert back is not None
    assert (silent.stop_reason, silent.running) == ("expired", 0)
    assert silent.stopped_at is not None
    assert (back.stop_reason, back.stopped_at) == (None, None)


async def test_prune_forgets_only_workers_stopped_long_ago(database: Database) -> None:
    await add_worker(database, "old", stopped_at=ago(3600), stop_reason="stopped")
    await add_worker(database, "new", stopped_at=ago(5), stop_reason="stopped")
    await add_worker(database, "alive")
    async with database.transaction() as session:
        assert await WorkerRepository(session).prune(ago(600)) == 1
    assert await fetch_worker(database, "old") is None
    assert await fetch_worker(database, "new") is not None
    assert await fetch_worker(database, "alive") is not None


async def test_list_page_newest_first_and_filtered_by_alive(database: Database) -> None:
    await add_worker(database, "oldest", started_at=ago(300), last_seen_at=ago(1))
    await add_worker(database, "expired", started_at=ago(200), last_seen_at=ago(100))
    await add_worker(database, "stopped", started_at=ago(100), stopped_at=ago(50))
    await add_worker(database, "newest", started_at=ago(10), last_seen_at=ago(1))
    cutoff = ago(30)
    async with database.session() as session:
        repository = WorkerRepository(session)
        every, total = await repository.list_page(alive=None, cutoff=cutoff, limit=10, offset=0)
        alive, alive_total = await repository.list_page(
            alive=True, cutoff=cutoff, limit=10, offset=0
        )
        dead, dead_total = await repository.list_page(alive=False, cutoff=cutoff, limit=1, offset=1)
        assert await repository.count_alive(cutoff) == 2
    assert ([w.id for w in every], total) == (["newest", "stopped", "expired", "oldest"], 4)
    assert ([w.id for w in alive], alive_total) == (["newest", "oldest"], 2)
    assert ([w.id for w in dead], dead_total) == (["expired"], 2)
