"""Throughput of the whole service over HTTP.

Starts `taskexec serve` on a fresh SQLite file (or the URL given), submits N no-op jobs with C
concurrent requests, waits until every job is terminal, and prints: submitted jobs/s, completed
jobs/s, `$execute` round-trip p50/p99, submit->completed p50/p99 (server timestamps), and the
server's RSS after each round (it should stay flat as jobs accumulate).

    .venv/bin/python bench/throughput.py --jobs 2000 --concurrency 32 --rounds 3
"""

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
from serverproc import free_port, rss_mib

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def start_server(
    database_url: str, port: int, max_concurrency: int, log: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TASKEXEC_DATABASE_URL": database_url,
        "TASKEXEC_MAX_CONCURRENCY": str(max_concurrency),
        "TASKEXEC_LOG_LEVEL": "warning",
        "PYTHONPATH": str(ROOT),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"server did not start; see {log}")


class RawClient:
    """A minimal keep-alive HTTP/1.1 client: the load generator must not be the bottleneck.

    (httpx spends more CPU per request than the server does on this 2-core machine.)
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post_json(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


async def submit_all(
    port: int, task: str, jobs: int, concurrency: int, rate: float | None = None
) -> tuple[list[str], list[float], float]:
    ids: list[str] = []
    latencies: list[float] = []
    remaining = jobs
    path = f"/api/v1/tasks/{task}/$execute"

    began = time.perf_counter()

    async def sender() -> None:
        nonlocal remaining
        client = RawClient("127.0.0.1", port)
        try:
            while remaining > 0:
                remaining -= 1
                if rate:
                    # Paced: request number k leaves at k / rate seconds (an open loop).
                    due = began + (jobs - remaining - 1) / rate
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                started = time.perf_counter()
                status, body = await client.post_json(path, b"{}")
                latencies.append(time.perf_counter() - started)
                if status != 202:
                    raise SystemExit(f"submit failed: {status} {body!r}")
                ids.append(json.loads(body)["job_id"])
        finally:
            await client.close()

    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return ids, latencies, time.perf_counter() - began


async def wait_all_terminal(base: str, timeout: float) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = 0
            for status in ("pending", "running"):
                page = (
                    await client.get("/api/v1/jobs", params={"status": status, "limit": 1})
                ).json()
                busy += page["total"]
            if busy == 0:
                return
            await asyncio.sleep(0.05)
    raise SystemExit("jobs did not finish in time")


async def fetch_jobs(base: str, ids: set[str]) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        offset = 0
        while True:
            page = (
                await client.get("/api/v1/jobs", params={"limit": 500, "offset": offset})
            ).json()
            found.extend(job for job in page["items"] if job["id"] in ids)
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return found


def ts(value: object) -> float:
    return datetime.fromisoformat(str(value)).timestamp()


async def run_round(base: str, port: int, args: argparse.Namespace, pid: int, number: int) -> None:
    ids, latencies, submit_seconds = await submit_all(
        port, args.task, args.jobs, args.concurrency, args.rate
    )
    await wait_all_terminal(base, timeout=600)
    jobs = await fetch_jobs(base, set(ids))
    statuses = {str(job["status"]) for job in jobs}
    created = [ts(job["created_at"]) for job in jobs]
    finished = [ts(job["finished_at"]) for job in jobs]
    to_done = [f - c for c, f in zip(created, finished, strict=True)]
    span = max(finished) - min(created)
    print(
        f"round {number}: {len(jobs)} jobs {sorted(statuses)} | "
        f"submitted {args.jobs / submit_seconds:,.0f}/s | completed {len(jobs) / span:,.0f}/s | "
        f"$execute p50 {statistics.median(latencies) * 1e3:.2f} ms "
        f"p99 {percentile(latencies, 99) * 1e3:.2f} ms | "
        f"submit->completed p50 {statistics.median(to_done) * 1e3:.2f} ms "
        f"p99 {percentile(to_done, 99) * 1e3:.2f} ms | server RSS {rss_mib(pid):.1f} MiB"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent HTTP requests")
    parser.add_argument("--max-concurrency", type=int, default=8, help="server job concurrency")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--task", default="noop")
    parser.add_argument(
        "--rate", type=float, default=None, help="pace submissions at this many per second"
    )
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="taskexec-bench-") as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{tmp}/bench.db"
        port = free_port()
        proc = start_server(url, port, args.max_concurrency, Path(tmp) / "server.log")
        base = f"http://127.0.0.1:{port}"
        try:
            print(
                f"taskexec throughput: {args.jobs} x {args.rounds} '{args.task}' jobs, "
                f"{args.concurrency} concurrent requests"
                f"{f' paced at {args.rate:g}/s' if args.rate else ''}, "
                f"max_concurrency {args.max_concurrency}, "
                f"{url.split(':')[0]}; server RSS at start {rss_mib(proc.pid):.1f} MiB"
            )
            for number in range(1, args.rounds + 1):
                await run_round(base, port, args, proc.pid, number)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    asyncio.run(main())
