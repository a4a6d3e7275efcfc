"""Dashboard pages over a big job table: server time of each page with N jobs in SQLite.

It migrates a SQLite file, bulk-inserts N jobs (spread over 30 days, 7 tasks, realistic
statuses; executemany in big transactions), gives one job 200 log lines and an artifact, adds
a flow (a root that mapped 10,000 children, one of which mapped 200 more), 200 schedules whose
fires are a fifth of the jobs (one schedule made a tenth of all jobs) and 8 worker rows, then
serves the app in process (no worker, no schedule firing: nothing changes under the
measurement) and times
each page: the median and p95 of R requests after one warm-up, against the 100 ms budget, and
the median CPU time of the process per request (from /proc, through `time.process_time`).

    .venv/bin/python bench/dashboard.py --jobs 1000000
"""

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from app.core.settings import Settings
from app.db.migrate import upgrade
from app.example_tasks import register_examples
from app.service.builder import ServiceBuilder
from app.service.schemas import ServiceInfo
from app.tasks.registry import TaskRegistry
from app.ui.queries import ulid_floor

BUDGET_MS = 100.0
BATCH = 50_000
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
STATUSES = ["completed"] * 900 + ["failed"] * 70 + ["canceled"] * 20 + ["pending"] * 10
COLUMNS = (
    "id, task_name, status, params, priority, run_at, created_at, started_at, finished_at, "
    "attempts, max_attempts, error, worker_id, event_seq, schedule_id, scheduled_for, "
    "parent_id, root_id, map_index, child_key"
)
SCHEDULES = 200
CHILDREN = 10_000
GRANDCHILDREN = 200


def schedule_ids(now: datetime) -> list[str]:
    """The schedules' ids; the first is the busy one (every tenth job is its fire)."""
    return [ulid_floor(now - timedelta(days=40))[:10] + f"{n:016d}" for n in range(SCHEDULES)]


def stamp(moment: datetime) -> str:
    """How SQLAlchemy stores a UTC datetime in SQLite."""
    return moment.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def rows(
    count: int,
    start: datetime,
    end: datetime,
    tasks: list[str],
    rng: random.Random,
    schedules: list[str],
) -> list[tuple[object, ...]]:
    """`count` jobs, oldest first, created evenly from `start` to `end`; one in ten is a fire
    of the busy schedule, one in ten a fire of one of the others."""
    out: list[tuple[object, ...]] = []
    for n in range(count):
        created = start + (end - start) * (n / count)
        status = rng.choice(STATUSES)
        suffix = "".join(rng.choice(CROCKFORD) for _ in range(16))
        started = created + timedelta(milliseconds=rng.randint(1, 500))
        finished = started + timedelta(milliseconds=rng.randint(5, 5000))
        done = status in ("completed", "failed", "canceled")
        error = (
            json.dumps({"type": "ValueError", "message": "bad input"})
            if status == "failed"
            else None
        )
        schedule = None
        if n % 10 == 0:
            schedule = schedules[0]
        elif n % 10 == 1:
            schedule = schedules[1 + rng.randrange(len(schedules) - 1)]
        out.append(
            (
                ulid_floor(created)[:10] + suffix,
                tasks[n % len(tasks)],
                status,
                json.dumps({"n": n}),
                0,
                stamp(created),
                stamp(created),
                stamp(started) if status != "pending" else None,
                stamp(finished) if done else None,
                0 if status == "pending" else 1,
                1,
                error,
                None,
                0,
                schedule,
                stamp(created) if schedule else None,
                None,
                None,
                None,
                None,
            )
        )
    return out


def flow_rows(root_id: str, created: datetime, rng: random.Random) -> list[tuple[object, ...]]:
    """A root that mapped CHILDREN children (ids: the root's time part and a hash, as the flow
    store makes them), the first of which mapped GRANDCHILDREN more."""
    out: list[tuple[object, ...]] = []

    def job(job_id: str, parent: str | None, index: int | None, status: str) -> None:
        done = status in ("completed", "failed")
        finished = stamp(created + timedelta(seconds=5)) if done else None
        out.append(
            (
                job_id, "process_data", status, json.dumps({"n": index}), 0, stamp(created),
                stamp(created), stamp(created), finished, 1, 1, None, None, 0, None, None,
                parent, root_id if parent else None, index,
                None if index is None else f"#0[{index}]",
            )
        )  # fmt: skip

    job(root_id, None, None, "waiting")
    first = None
    for index in range(CHILDREN):
        child = root_id[:10] + "".join(rng.choice(CROCKFORD) for _ in range(16))
        first = first or child
        job(child, root_id, index, rng.choice(["completed"] * 8 + ["failed", "running"]))
    assert first is not None
    for index in range(GRANDCHILDREN):
        grandchild = root_id[:10] + "".join(rng.choice(CROCKFORD) for _ in range(16))
        job(grandchild, first, index, "completed")
    return out


def fill(path: Path, count: int, now: datetime) -> str:
    """Insert the jobs; returns the id of one completed job given logs and an artifact."""
    rng = random.Random(13)
    tasks = TaskRegistry.list_all()
    schedules = schedule_ids(now)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    placeholders = ", ".join("?" * len(COLUMNS.split(",")))
    started = time.perf_counter()
    # Bulk load without the secondary indexes, then build each once (as the migrations did).
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs' "
        "AND sql IS NOT NULL"
    ).fetchall()
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    for first in range(0, count, BATCH):
        size = min(BATCH, count - first)
        # Each batch covers its own slice of the 30 days.
        start = now - timedelta(days=30 * (1 - first / count))
        end = now - timedelta(days=30 * (1 - (first + size) / count))
        batch = rows(size, start, end, tasks, rng, schedules)
        with conn:
            conn.executemany(f"INSERT INTO jobs ({COLUMNS}) VALUES ({placeholders})", batch)  # noqa: S608
    root_at = now - timedelta(days=15)
    with conn:
        conn.executemany(
            f"INSERT INTO jobs ({COLUMNS}) VALUES ({placeholders})",  # noqa: S608
            flow_rows(ulid_floor(root_at)[:10] + "R" * 16, root_at, rng),
        )
        for _, sql in indexes:
            conn.execute(sql)
    add_schedules_and_workers(conn, now, schedules)
    print(
        f"inserted {count:,} jobs and built their indexes in {time.perf_counter() - started:.1f} s"
    )
    job_id = conn.execute(
        "SELECT id FROM jobs WHERE status = 'completed' ORDER BY id DESC LIMIT 1"
    ).fetchone()[0]
    with conn:
        events = [
            (
                job_id,
                seq,
                "log",
                stamp(now),
                json.dumps({"level": "INFO", "logger": "t", "message": f"line {seq}"}),
            )
            for seq in range(1, 201)
        ]
        conn.executemany(
            "INSERT INTO job_events (job_id, seq, type, created_at, data) VALUES (?, ?, ?, ?, ?)",
            events,
        )
        artifact = ulid_floor(now)[:10] + "A" * 16
        conn.execute(
            "INSERT INTO artifacts (id, job_id, data, created_at, name, kind, level) "
            "VALUES (?, ?, ?, ?, 'result', 'json', 0)",
            (
                artifact,
                job_id,
                json.dumps({"task_name": "t", "params": {}, "result": {"ok": True}, "error": None}),
                stamp(now),
            ),
        )
        conn.execute(
            "UPDATE jobs SET event_seq = 200, result_artifact_id = ? WHERE id = ?",
            (artifact, job_id),
        )
    conn.execute("ANALYZE")
    conn.close()
    return str(job_id)


def add_schedules_and_workers(conn: sqlite3.Connection, now: datetime, ids: list[str]) -> None:
    """The schedules (every other one a cron in Paris, one in ten paused) and 8 workers."""
    with conn:
        conn.executemany(
            "INSERT INTO schedules (id, task_name, params, cron, timezone, interval_seconds, "
            "enabled, catchup, overlap, next_fire_at, last_fired_at, created_at, updated_at) "
            "VALUES (?, 'greet_user', '{}', ?, ?, ?, ?, 'latest', 'allow', ?, ?, ?, ?)",
            [
                (
                    schedule_id,
                    "*/5 * * * *" if n % 2 else None,
                    "Europe/Paris" if n % 2 else "UTC",
                    None if n % 2 else 60,
                    n % 10 != 3,
                    stamp(now + timedelta(minutes=1)),
                    stamp(now - timedelta(minutes=4)),
                    stamp(now - timedelta(days=40)),
                    stamp(now - timedelta(days=40)),
                )
                for n, schedule_id in enumerate(ids)
            ],
        )
        conn.executemany(
            "INSERT INTO workers (id, host, pid, tasks, started_at, last_seen_at, running, "
            "stopped_at, stop_reason) VALUES (?, ?, ?, '[]', ?, ?, ?, ?, ?)",
            [
                (
                    f"host{n}:{100 + n}:x",
                    f"host{n}",
                    100 + n,
                    stamp(now - timedelta(hours=n)),
                    stamp(now - timedelta(seconds=2 if n < 5 else 600)),
                    n if n < 5 else 0,
                    stamp(now - timedelta(minutes=5)) if n >= 5 else None,
                    ("stopped" if n < 7 else "expired") if n >= 5 else None,
                )
                for n in range(8)
            ],
        )


async def measure(url: str, ids: dict[str, str], repeats: int) -> None:
    settings = Settings(
        _env_file=None,
        database_url=url,
        auto_migrate=False,
        run_worker=False,
        run_schedules=False,
        load_examples=False,
    )
    app = (
        ServiceBuilder(info=ServiceInfo(display_name="bench"), settings=settings)
        .with_health()
        .with_ui()
        .build()
    )
    now = datetime.now(UTC)
    day = (now - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    next_day = (now - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    pages = [
        ("reference: /health", "/health", {}),
        ("reference: API tasks", "/api/v1/tasks", {}),
        ("overview", "/ui", {}),
        ("overview poll", "/ui", {"HX-Request": "true", "HX-Target": "overview-live"}),
        ("jobs", "/ui/jobs", {}),
        ("jobs poll", "/ui/jobs", {"HX-Request": "true", "HX-Target": "job-rows"}),
        ("jobs status=failed", "/ui/jobs?status=failed", {}),
        ("jobs status=pending", "/ui/jobs?status=pending", {}),
        ("jobs task", "/ui/jobs?task=greet_user", {}),
        ("jobs task+status", "/ui/jobs?task=sleep_task&status=canceled", {}),
        ("jobs tag=demo", "/ui/jobs?tag=demo", {}),
        ("jobs one day", f"/ui/jobs?from={day}&to={next_day}", {}),
        ("jobs page deep", f"/ui/jobs?before={ids['middle']}", {}),
        ("jobs newer", f"/ui/jobs?after={ids['middle']}", {}),
        ("job", f"/ui/jobs/{ids['job']}", {}),
        ("tasks", "/ui/tasks", {}),
        ("task", "/ui/tasks/greet_user", {}),
        ("schedules", "/ui/schedules", {}),
        ("schedules poll", "/ui/schedules", {"HX-Request": "true", "HX-Target": "schedule-rows"}),
        ("schedules page 4", "/ui/schedules?offset=150", {}),
        ("jobs schedule (100k)", f"/ui/jobs?schedule={ids['busy']}", {}),
        ("jobs schedule deep", f"/ui/jobs?schedule={ids['busy']}&before={ids['middle']}", {}),
        ("jobs parent (10k)", f"/ui/jobs?parent={ids['root']}", {}),
        ("jobs parent+failed", f"/ui/jobs?parent={ids['root']}&status=failed", {}),
        ("jobs parent (200)", f"/ui/jobs?parent={ids['child']}", {}),
        ("jobs root (10,201)", f"/ui/jobs?root={ids['root']}", {}),
        ("jobs root+failed", f"/ui/jobs?root={ids['root']}&status=failed", {}),
        ("jobs root+task", f"/ui/jobs?root={ids['root']}&task=process_data", {}),
        ("job root (10k kids)", f"/ui/jobs/{ids['root']}", {}),
        ("job flow poll", f"/ui/jobs/{ids['root']}/outcome?part=flow", {}),
        ("job child (200 kids)", f"/ui/jobs/{ids['child']}", {}),
    ]
    print(f"{'page':<22} {'median ms':>10} {'p95 ms':>10} {'cpu ms':>8} {'budget ms':>10}  verdict")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for name, path, headers in pages:
                first = await client.get(path, headers=headers)
                assert first.status_code == 200, (path, first.status_code, first.text[:300])
                times, cpu = [], []
                for _ in range(repeats):
                    started, cpu_started = time.perf_counter(), time.process_time()
                    response = await client.get(path, headers=headers)
                    times.append((time.perf_counter() - started) * 1000)
                    cpu.append((time.process_time() - cpu_started) * 1000)
                    assert response.status_code == 200
                times.sort()
                median = statistics.median(times)
                p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
                verdict = "ok" if p95 <= BUDGET_MS else "OVER"
                print(
                    f"{name:<22} {median:>10.1f} {p95:>10.1f} {statistics.median(cpu):>8.1f} "
                    f"{BUDGET_MS:>10.0f}  {verdict}"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--db", type=Path, help="reuse (or keep) this SQLite file")
    args = parser.parse_args()
    register_examples(TaskRegistry)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "dashboard.db"
        url = f"sqlite+aiosqlite:///{path}"
        fresh = not path.exists()
        upgrade(url)  # a kept file gets the newer migrations' indexes
        if fresh:
            fill(path, args.jobs, datetime.now(UTC))
        ids = find_ids(path)
        print(f"{ids.pop('total')} jobs in {path} ({path.stat().st_size / 1e6:.0f} MB)")
        asyncio.run(measure(url, ids, args.repeats))


def find_ids(path: Path) -> dict[str, str]:
    """The jobs and schedule the pages are timed on."""
    conn = sqlite3.connect(path)

    def one(sql: str, *args: object) -> str:
        return str(conn.execute(sql, args).fetchone()[0])

    total = int(one("SELECT count(*) FROM jobs"))
    root = one("SELECT id FROM jobs WHERE parent_id IS NULL AND status = 'waiting'")
    ids = {
        "total": f"{total:,}",
        "job": one("SELECT id FROM jobs WHERE event_seq = 200 LIMIT 1"),
        "middle": one("SELECT id FROM jobs ORDER BY id LIMIT 1 OFFSET ?", total // 2),
        "root": root,
        "child": one("SELECT parent_id FROM jobs WHERE root_id = ? AND parent_id != ?", root, root),
        "busy": one(
            "SELECT schedule_id FROM jobs WHERE schedule_id IS NOT NULL ORDER BY id LIMIT 1"
        ),
    }
    conn.close()
    return ids


if __name__ == "__main__":
    main()
