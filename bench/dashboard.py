"""Dashboard pages over a big job table: server time of each page with N jobs in SQLite.

It migrates a SQLite file, bulk-inserts N jobs (spread over 30 days, 7 tasks, realistic
statuses; executemany in big transactions), gives one job 200 log lines and an artifact, then
serves the app in process (no worker, so nothing changes under the measurement) and times
each page: the median and p95 of R requests after one warm-up, against the 100 ms budget.

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
    "attempts, max_attempts, error, worker_id, event_seq"
)


def stamp(moment: datetime) -> str:
    """How SQLAlchemy stores a UTC datetime in SQLite."""
    return moment.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def rows(
    count: int, now: datetime, tasks: list[str], rng: random.Random
) -> list[tuple[object, ...]]:
    """`count` jobs, oldest first, created evenly over the 30 days before `now`."""
    span = 30 * 86400
    out: list[tuple[object, ...]] = []
    for n in range(count):
        created = now - timedelta(seconds=span * (1 - n / count))
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
            )
        )
    return out


def fill(path: Path, count: int, now: datetime) -> str:
    """Insert the jobs; returns the id of one completed job given logs and an artifact."""
    rng = random.Random(13)
    tasks = TaskRegistry.list_all()
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
        batch = rows(size, now - timedelta(days=30 * (1 - (first + size) / count)), tasks, rng)
        # Each batch covers its own slice of the 30 days.
        with conn:
            conn.executemany(f"INSERT INTO jobs ({COLUMNS}) VALUES ({placeholders})", batch)  # noqa: S608
    with conn:
        for _, sql in indexes:
            conn.execute(sql)
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
            "INSERT INTO artifacts (id, job_id, data, created_at) VALUES (?, ?, ?, ?)",
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


async def measure(url: str, job_id: str, middle_id: str, repeats: int) -> None:
    settings = Settings(
        _env_file=None, database_url=url, auto_migrate=False, run_worker=False, load_examples=False
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
        ("jobs page deep", f"/ui/jobs?before={middle_id}", {}),
        ("jobs newer", f"/ui/jobs?after={middle_id}", {}),
        ("job", f"/ui/jobs/{job_id}", {}),
        ("tasks", "/ui/tasks", {}),
        ("task", "/ui/tasks/greet_user", {}),
    ]
    print(f"{'page':<22} {'median ms':>10} {'p95 ms':>10} {'budget ms':>10}  verdict")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for name, path, headers in pages:
                first = await client.get(path, headers=headers)
                assert first.status_code == 200, (path, first.status_code, first.text[:300])
                times = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    response = await client.get(path, headers=headers)
                    times.append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200
                times.sort()
                median = statistics.median(times)
                p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
                verdict = "ok" if p95 <= BUDGET_MS else "OVER"
                print(f"{name:<22} {median:>10.1f} {p95:>10.1f} {BUDGET_MS:>10.0f}  {verdict}")


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
        if not path.exists():
            upgrade(url)
            job_id = fill(path, args.jobs, datetime.now(UTC))
        conn = sqlite3.connect(path)
        total = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
        job_id = conn.execute("SELECT id FROM jobs WHERE event_seq = 200 LIMIT 1").fetchone()[0]
        middle_id = conn.execute(
            "SELECT id FROM jobs ORDER BY id LIMIT 1 OFFSET ?", (total // 2,)
        ).fetchone()[0]
        conn.close()
        print(f"{total:,} jobs in {path} ({path.stat().st_size / 1e6:.0f} MB)")
        asyncio.run(measure(url, job_id, middle_id, args.repeats))


if __name__ == "__main__":
    main()
