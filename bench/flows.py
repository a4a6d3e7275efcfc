"""A map of N children against N plain jobs, on PostgreSQL with worker processes.

It starts `taskexec worker --processes P` on a fresh database and, for each round, times
  - plain: N `pg_quick` jobs queued at once, from the first submit to the last finish;
  - flow:  one `pg_fan_out` parent that maps `pg_quick` over N items and gathers them, from
           its submit to its finish (children queued by the parent, the fan-in, the parent's
           resume and its result included);
and prints both side by side with the overhead per child ((flow - plain) / N).

    .venv/bin/python bench/flows.py --children 1000 --processes 4 --rounds 3
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
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from app.db.database import Database
from app.db.migrate import upgrade
from app.jobs.models import Job, JobEvent
from app.jobs.scheduler import JobScheduler

# Imported for their tasks (registered on import), which the workers serve too.
from tests.postgres import flow_tasks, tasks

ROOT = Path(__file__).resolve().parent.parent
MODULES = "tests.postgres.tasks,tests.postgres.flow_tasks"
TERMINAL = ("completed", "failed", "canceled")


def admin_dsn(url: str) -> str:
    parsed = make_url(url).set(drivername="postgresql", database="postgres")
    return parsed.render_as_string(hide_password=False)


async def reset(url: str) -> None:
    name = make_url(url).database
    conn = await asyncpg.connect(admin_dsn(url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    await asyncio.to_thread(upgrade, url)


async def listeners(url: str) -> int:
    conn = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(False))
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'",
            make_url(url).database,
        )
        return count
    finally:
        await conn.close()


async def until_finished(database: Database, job_ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with database.read_session() as session:
            left = await session.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.id.in_(job_ids), Job.status.not_in(TERMINAL))
            )
        if not left:
            return
        await asyncio.sleep(0.02)
    raise SystemExit(f"jobs not finished within {timeout} s")


async def plain_round(scheduler: JobScheduler, database: Database, count: int) -> float:
    started = time.perf_counter()
    jobs = await asyncio.gather(*(scheduler.submit("pg_quick", {"n": n}) for n in range(count)))
    await until_finished(database, [job.id for job in jobs], timeout=600)
    return time.perf_counter() - started


async def flow_round(
    scheduler: JobScheduler, database: Database, count: int
) -> tuple[float, dict[str, float]]:
    """The flow's time, and when (seconds after its submit) its parent reached each step."""
    started = time.perf_counter()
    parent = await scheduler.submit("pg_fan_out", {"count": count})
    await until_finished(database, [parent.id], timeout=600)
    elapsed = time.perf_counter() - started
    async with database.read_session() as session:
        status = await session.scalar(select(Job.status).where(Job.id == parent.id))
        rows = await session.execute(
            select(JobEvent.type, func.max(JobEvent.created_at))
            .where(JobEvent.job_id == parent.id)
            .group_by(JobEvent.type)
        )
        steps = {kind: (at - parent.created_at).total_seconds() for kind, at in rows}
    if status != "completed":
        raise SystemExit(f"the flow ended {status}")
    return elapsed, steps


async def run(args: argparse.Namespace, tmp: Path) -> None:
    await reset(args.postgres_url)
    env = {
        **os.environ,
        "TASKEXEC_DATABASE_URL": args.postgres_url,
        "TASKEXEC_TASK_MODULES": MODULES,
        "TASKEXEC_MAX_CONCURRENCY": str(args.concurrency),
        "TASKEXEC_LOG_LEVEL": "warning",
        "PYTHONPATH": str(ROOT),
    }
    log = (tmp / "workers.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "app", "worker", "--processes", str(args.processes)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp,
    )
    assert flow_tasks and tasks
    database = Database(args.postgres_url)
    scheduler = JobScheduler(database, max_concurrency=1)
    try:
        deadline = time.monotonic() + 60
        while await listeners(args.postgres_url) < args.processes:
            if time.monotonic() > deadline:
                raise SystemExit("worker processes did not start")
            await asyncio.sleep(0.1)
        plain: list[float] = []
        flow: list[float] = []
        steps: list[dict[str, float]] = []
        for _ in range(args.rounds):
            plain.append(await plain_round(scheduler, database, args.children))
            elapsed, reached = await flow_round(scheduler, database, args.children)
            flow.append(elapsed)
            steps.append(reached)
    finally:
        await database.dispose()
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        log.close()
    n = args.children
    print(
        f"PostgreSQL, {args.processes} worker processes x concurrency {args.concurrency}, "
        f"{n} jobs per round, {args.rounds} rounds"
    )
    for label, times in (("plain jobs", plain), ("flow (map)", flow)):
        rounds = ", ".join(f"{t:.2f}" for t in times)
        median = statistics.median(times)
        print(f"  {label:11} median {median:6.2f} s  ({n / median:7,.0f} jobs/s)  rounds: {rounds}")
    overhead = (statistics.median(flow) - statistics.median(plain)) / n * 1e3
    print(f"  overhead per child: {overhead:+.2f} ms")
    for index, reached in enumerate(steps, 1):
        order = ("waiting", "child_finished", "woken", "resumed", "completed")
        marks = "  ".join(f"{kind} {reached[kind]:.3f}" for kind in order if kind in reached)
        print(f"  round {index}, parent's last event of each kind (s after submit): {marks}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--children", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=32, help="per worker process")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "TASKEXEC_BENCH_POSTGRES_URL",
            "postgresql+asyncpg://postgres@127.0.0.1:5432/taskexec_bench_flows",
        ),
        help="a database the bench may drop and recreate",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="taskexec-flows-") as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
