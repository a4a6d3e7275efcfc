"""The job engine without HTTP: queue N no-op jobs, drain them with worker processes.

For each backend (SQLite file, PostgreSQL) and each worker-process count, it enqueues N jobs
straight into the job table, starts `taskexec worker --processes P`, and prints the drain rate
(jobs completed per second, from the first start to the last finish, artifacts included) and
the worker processes' CPU per job (user + system time from /proc over the same window, less
sensitive to a loaded machine than the rate) and the claim latency (one claim transaction of a
batch, p50/p99, measured separately).

    .venv/bin/python bench/engine.py --jobs 20000 --processes 1 2 4

`--source DIR` runs the workers from another checkout (e.g. `git archive <commit> | tar -x -C
DIR`), to print a before/after pair on the same machine state.
"""

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from app.artifacts.models import Artifact
from app.core.clock import new_id, utcnow
from app.db.database import Database
from app.jobs.limits import ConcurrencyLimits
from app.jobs.models import Job, JobStatus
from app.jobs.store import JobStore

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its live descendants (all threads)."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICKS
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def reset(url: str, tmp: Path, source: Path = ROOT) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{parsed.database}{suffix}").unlink(missing_ok=True)
    else:
        admin = parsed.set(drivername="postgresql", database="postgres")
        conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
        try:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                parsed.database,
            )
            await conn.execute(f'DROP DATABASE IF EXISTS "{parsed.database}"')
            await conn.execute(f'CREATE DATABASE "{parsed.database}"')
        finally:
            await conn.close()
    # The schema of the checkout the workers run from (its own migrations).
    env = {**os.environ, "TASKEXEC_DATABASE_URL": url, "PYTHONPATH": str(source)}
    await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app", "migrate"],
        env=env,
        cwd=tmp,
        check=True,
        capture_output=True,
    )


async def enqueue(database: Database, count: int) -> None:
    now = utcnow()
    for start in range(0, count, 2000):
        jobs = [
            Job(
                id=new_id(),
                task_name="noop",
                status=JobStatus.PENDING,
                params={},
                priority=0,
                run_at=now,
                created_at=now,
                attempts=0,
                max_attempts=1,
            )
            for _ in range(min(2000, count - start))
        ]
        await JobStore(database).queue(jobs)


async def analyze(database: Database) -> None:
    """PostgreSQL's table statistics, as autovacuum gathers them within a minute on a live server: a
    freshly loaded table without any makes PostgreSQL's planner scan it whole for lookups
    by `parent_id` (the end of every batch asks whether the jobs have unfinished children)."""
    async with database.transaction() as session:
        await session.execute(text("ANALYZE"))


async def drain(
    url: str, database: Database, jobs: int, processes: int, args: argparse.Namespace, tmp: Path
) -> tuple[float, float, int, int]:
    env = {
        **os.environ,
        "TASKEXEC_DATABASE_URL": url,
        "TASKEXEC_WORKER_PROCESSES": str(processes),
        "TASKEXEC_MAX_CONCURRENCY": str(args.concurrency),
        "TASKEXEC_LOG_LEVEL": "warning",
        "PYTHONPATH": str(args.source),
    }
    log = (tmp / f"worker-{processes}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "worker"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp,
    )
    # CPU from the first poll that sees jobs done to the last, over the jobs done between.
    first_cpu: tuple[float, int] | None = None
    cpu_per_job = float("nan")
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            cpu = tree_cpu_seconds(proc.pid)
            async with database.session() as session:
                left = await session.scalar(
                    select(func.count())
                    .select_from(Job)
                    .where(Job.status.in_([JobStatus.PENDING, JobStatus.RUNNING]))
                )
            done = jobs - (left or 0)
            if first_cpu is None and done > 0:
                first_cpu = (cpu, done)
            elif first_cpu is not None and done > first_cpu[1]:
                cpu_per_job = (cpu - first_cpu[0]) / (done - first_cpu[1])
            if not left:
                break
            await asyncio.sleep(0.1)
        else:
            raise SystemExit("drain did not finish")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()
    async with database.session() as session:
        first = await session.scalar(select(func.min(Job.started_at)))
        last = await session.scalar(select(func.max(Job.finished_at)))
        completed = await session.scalar(
            select(func.count()).select_from(Job).where(Job.status == JobStatus.COMPLETED)
        )
        artifacts = await session.scalar(select(func.count()).select_from(Artifact))
    assert first is not None and last is not None
    rate = jobs / (last - first).total_seconds()
    return rate, cpu_per_job, completed or 0, artifacts or 0


async def claim_latency(database: Database, batch: int, rounds: int) -> list[float]:
    await enqueue(database, batch * rounds)
    timings: list[float] = []
    for _ in range(rounds):
        started = time.perf_counter()
        async with database.transaction() as session:
            claimed, _ = await JobStore.claim_in(
                session,
                worker_id="bench:0:claim",
                limit=batch,
                lease_seconds=30,
                limits=ConcurrencyLimits(),
                task_names=("noop",),
            )
        timings.append(time.perf_counter() - started)
        assert len(claimed) == batch
    return timings


async def run_backend(url: str, args: argparse.Namespace, tmp: Path) -> None:
    name = make_url(url).get_backend_name()
    for processes in args.processes:
        await reset(url, tmp, args.source)
        database = Database(url)
        try:
            await enqueue(database, args.jobs)
            if args.analyze and not database.is_sqlite:
                await analyze(database)
            rate, cpu, completed, artifacts = await drain(
                url, database, args.jobs, processes, args, tmp
            )
        finally:
            await database.dispose()
        print(
            f"{name:10} {processes} worker process(es) x concurrency {args.concurrency}: "
            f"drained {args.jobs} jobs at {rate:,.0f} jobs/s, "
            f"worker CPU {cpu * 1e3:.3f} ms/job "
            f"({completed} completed, {artifacts} artifacts)",
            flush=True,
        )
    await reset(url, tmp)
    database = Database(url)
    try:
        timings = await claim_latency(database, args.claim_batch, rounds=200)
    finally:
        await database.dispose()
    print(
        f"{name:10} claim latency, batch of {args.claim_batch}: "
        f"p50 {statistics.median(timings) * 1e3:.2f} ms, "
        f"p99 {percentile(timings, 99) * 1e3:.2f} ms",
        flush=True,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--concurrency", type=int, default=128, help="per worker process")
    parser.add_argument("--claim-batch", type=int, default=64)
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout the workers run from")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "TASKEXEC_BENCH_POSTGRES_URL",
            "postgresql+asyncpg://postgres@127.0.0.1:5432/taskexec_bench",
        ),
        help="a database the bench may drop and recreate",
    )
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument(
        "--analyze",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="PostgreSQL: ANALYZE after queueing (--no-analyze: a planner without statistics)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="taskexec-engine-") as tmp:
        urls = {
            "sqlite": f"sqlite+aiosqlite:///{tmp}/engine.db",
            "postgresql": args.postgres_url,
        }
        for backend in args.backends:
            await run_backend(urls[backend], args, Path(tmp))


if __name__ == "__main__":
    asyncio.run(main())
