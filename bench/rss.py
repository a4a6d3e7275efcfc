"""Server RSS over 100,000 jobs: does it stay flat once warm?

One run, three phases, each with its own server process on 127.0.0.1:

- `floor`: `bench/floor_app.py` (validates an `$execute` body, answers 202, stores nothing),
  given as many `$execute` requests as taskexec gets jobs: the reference for what uvicorn,
  FastAPI and pydantic alone do to RSS over the same number of requests;
- `batch`: `taskexec serve` (SQLite, embedded worker): `--jobs` no-op jobs through
  `$execute-many` in batches of `--batch` over `--connections` keep-alive connections;
- `single`: the same server setup, `--single-jobs` no-op jobs through single `$execute` calls.

Jobs go in rounds of `--every`; after each round the bench waits until no job is pending or
running, then reads the server's RSS (VmRSS from /proc) and CPU time. The table shows, per
round, the jobs done, RSS, and RSS minus the RSS after the first round (the warm-up), for each
phase side by side, then the CPU milliseconds per job of each phase.

    .venv/bin/python bench/rss.py
    .venv/bin/python bench/rss.py --jobs 20000 --every 2000 --phases floor batch
"""

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from http_floor import cpu_seconds, floor, post_many
from serverproc import Server, rss_mib

PHASES = ("floor", "batch", "single")
NOOP = "/api/v1/tasks/noop"


async def busy(client: httpx.AsyncClient) -> int:
    """Jobs pending or running (each status's `total`)."""
    count = 0
    for status in ("pending", "running"):
        response = await client.get("/api/v1/jobs", params={"status": status, "limit": 1})
        response.raise_for_status()
        count += int(response.json()["total"])
    return count


async def drained(url: str, timeout: float = 1800) -> None:
    """Return once the server holds no pending or running job."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        deadline = time.monotonic() + timeout
        while await busy(client):
            if time.monotonic() > deadline:
                raise SystemExit("jobs did not finish in time")
            await asyncio.sleep(0.2)


async def rounds(
    pid: int, total: int, every: int, run_round: Callable[[int], Awaitable[None]]
) -> tuple[list[float], float]:
    """Run `total // every` rounds; the RSS after each and the CPU seconds of them all."""
    samples: list[float] = []
    cpu0 = cpu_seconds(pid)
    for _ in range(total // every):
        await run_round(every)
        samples.append(rss_mib(pid))
        print(f"  {len(samples) * every:>7,} jobs  RSS {samples[-1]:7.1f} MiB", flush=True)
    return samples, cpu_seconds(pid) - cpu0


async def floor_phase(workdir: Path, args: argparse.Namespace) -> tuple[list[float], float]:
    server = floor(workdir)
    body = b'{"params": {}}'

    async def run_round(count: int) -> None:
        await post_many(server.port, f"{NOOP}/$execute", [body] * count, args.connections)

    try:
        return await rounds(server.proc.pid, args.jobs, args.every, run_round)
    finally:
        server.stop()


async def batch_phase(workdir: Path, args: argparse.Namespace) -> tuple[list[float], float]:
    server = Server(workdir, env={"TASKEXEC_MAX_CONCURRENCY": str(args.slots)})
    body = json.dumps({"items": [{"params": {}}] * args.batch}).encode()

    async def run_round(count: int) -> None:
        bodies = [body] * (count // args.batch)
        await post_many(server.port, f"{NOOP}/$execute-many", bodies, args.connections)
        await drained(server.url)

    try:
        return await rounds(server.proc.pid, args.jobs, args.every, run_round)
    finally:
        server.stop()


async def single_phase(workdir: Path, args: argparse.Namespace) -> tuple[list[float], float]:
    server = Server(workdir, env={"TASKEXEC_MAX_CONCURRENCY": str(args.slots)})
    body = b'{"params": {}}'

    async def run_round(count: int) -> None:
        await post_many(server.port, f"{NOOP}/$execute", [body] * count, args.connections)
        await drained(server.url)

    try:
        return await rounds(server.proc.pid, args.single_jobs, args.every, run_round)
    finally:
        server.stop()


def table(every: int, results: dict[str, tuple[list[float], float]]) -> None:
    names = list(results)
    head = f"{'jobs':>8}" + "".join(f" | {name:>6} MiB  delta" for name in names)
    print(head)
    print("-" * len(head))
    longest = max(len(samples) for samples, _ in results.values())
    for index in range(longest):
        row = f"{(index + 1) * every:>8,}"
        for name in names:
            samples = results[name][0]
            if index < len(samples):
                row += f" | {samples[index]:10.1f} {samples[index] - samples[0]:+6.1f}"
            else:
                row += " | " + " " * 17
        print(row)
    for name in names:
        samples, cpu = results[name]
        jobs = len(samples) * every
        growth = samples[-1] - samples[0]
        print(
            f"{name:<7} {jobs:,} jobs: RSS {samples[0]:.1f} -> {samples[-1]:.1f} MiB "
            f"({growth:+.1f} MiB after warm-up, max {max(samples):.1f}), "
            f"CPU {cpu / jobs * 1e3:.3f} ms/job"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs of floor and batch")
    parser.add_argument("--single-jobs", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=10_000, help="jobs per round / sample")
    parser.add_argument("--batch", type=int, default=100, help="items per $execute-many")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--slots", type=int, default=8, help="TASKEXEC_MAX_CONCURRENCY")
    parser.add_argument("--phases", nargs="+", choices=PHASES, default=list(PHASES))
    args = parser.parse_args()
    print(
        f"RSS over {args.jobs:,} jobs (single: {args.single_jobs:,}), sampled every "
        f"{args.every:,}; {args.connections} connections, batch {args.batch}, SQLite, "
        f"{os.cpu_count()} cores"
    )
    phases = {"floor": floor_phase, "batch": batch_phase, "single": single_phase}
    results: dict[str, tuple[list[float], float]] = {}
    with tempfile.TemporaryDirectory(prefix="taskexec-rss-") as tmp:
        for name in args.phases:
            workdir = Path(tmp) / name
            workdir.mkdir()
            print(f"{name}:", flush=True)
            results[name] = await phases[name](workdir, args)
    table(args.every, results)


if __name__ == "__main__":
    asyncio.run(main())
