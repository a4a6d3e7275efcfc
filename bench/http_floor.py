"""taskexec over HTTP, side by side with the HTTP floor, in one run.

Each scenario starts its own server process on 127.0.0.1 and drives it with the same raw
keep-alive client (`throughput.RawClient`) over C concurrent connections:

- `floor`: `bench/floor_app.py`, a FastAPI app that validates the same `$execute` body and
  answers 202 (no storage, no worker): what HTTP, routing and one pydantic body cost;
- `single`: `taskexec serve` (embedded worker, SQLite): N single `$execute` calls of a no-op task;
- `submit-only`: `taskexec serve --no-worker`: the same N calls, nothing runs them;
- `batch`: `taskexec serve` with `$execute-many` in batches of B;
- `batch-submit`: the same batches to `taskexec serve --no-worker`: what a batch submit costs;
- `idle-start`: one job at a time on an idle server: how long after `$execute` answered the job
  started (server `started_at` minus the client's receipt of the 202; same host clock).

For each it prints jobs per second, server CPU milliseconds per job (user + system time of the
server process from /proc, over the whole run, the wait for completion included),
`$execute` p50/p99 and submit->completed p50/p99 (server timestamps), and the server's RSS.

    .venv/bin/python bench/http_floor.py --jobs 5000 --concurrency 32
    .venv/bin/python bench/http_floor.py --scenarios single --jobs 100000 --concurrency 32
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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
from serverproc import free_port, rss_mib
from throughput import RawClient, percentile

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")
SCENARIOS = ("floor", "single", "submit-only", "batch", "batch-submit", "idle-start")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start(command: Sequence[str], env: dict[str, str], workdir: Path, name: str) -> Server:
    port = free_port()
    log = workdir / f"{name}.log"
    full_env = {**os.environ, **env, "PYTHONPATH": f"{ROOT}:{ROOT / 'bench'}"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                return Server(proc, port)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{name} did not start; see {log}")


def taskexec(workdir: Path, name: str, max_concurrency: int, *extra: str) -> Server:
    database = workdir / f"{name}.db"
    env = {
        "TASKEXEC_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "TASKEXEC_MAX_CONCURRENCY": str(max_concurrency),
        "TASKEXEC_LOG_LEVEL": "warning",
    }
    return start([sys.executable, "-m", "app", "serve", *extra], env, workdir, name)


def floor(workdir: Path) -> Server:
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "floor_app:app",
        "--log-level",
        "warning",
    ]
    return start(command, {}, workdir, "floor")


async def post_many(
    port: int, path: str, bodies: list[bytes], concurrency: int
) -> tuple[list[bytes], list[float]]:
    """POST every body over `concurrency` keep-alive connections; 202 expected."""
    answers: list[bytes] = []
    latencies: list[float] = []
    queue = iter(bodies)

    async def sender() -> None:
        client = RawClient("127.0.0.1", port)
        try:
            for body in queue:
                began = time.perf_counter()
                status, answer = await client.post_json(path, body)
                latencies.append(time.perf_counter() - began)
                if status != 202:
                    raise SystemExit(f"{path}: {status} {answer[:300]!r}")
                answers.append(answer)
        finally:
            await client.close()

    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return answers, latencies


async def busy_count(client: httpx.AsyncClient) -> int:
    busy = 0
    for status in ("pending", "running"):
        page = (await client.get("/api/v1/jobs", params={"status": status, "limit": 1})).json()
        busy += int(page["total"])
    return busy


async def wait_done(server: Server, timeout: float = 1800) -> None:
    async with httpx.AsyncClient(base_url=server.base, timeout=60) as client:
        deadline = time.monotonic() + timeout
        while await busy_count(client):
            if time.monotonic() > deadline:
                raise SystemExit("jobs did not finish in time")
            await asyncio.sleep(0.1)


def ts(value: object) -> float:
    return datetime.fromisoformat(str(value)).timestamp()


async def job_times(server: Server, ids: Sequence[str]) -> list[dict[str, object]]:
    """The jobs, read back after the measured window (newest first, pages of 500)."""
    wanted = set(ids)
    found: list[dict[str, object]] = []
    async with httpx.AsyncClient(base_url=server.base, timeout=120) as client:
        offset = 0
        while len(found) < len(wanted):
            page = (
                await client.get("/api/v1/jobs", params={"limit": 500, "offset": offset})
            ).json()
            if not page["items"]:
                break
            found.extend(job for job in page["items"] if job["id"] in wanted)
            offset += len(page["items"])
    return found


def line(name: str, jobs: int, seconds: float, cpu: float, latencies: Sequence[float]) -> str:
    text = (
        f"{name:<12} {jobs / seconds:>8,.0f} jobs/s | CPU {cpu / jobs * 1e3:6.3f} ms/job"
        f" | $execute p50 {statistics.median(latencies) * 1e3:6.2f} ms"
        f" p99 {percentile(list(latencies), 99) * 1e3:7.2f} ms"
    )
    return text


def completion(jobs: list[dict[str, object]]) -> str:
    if not jobs or any(job.get("finished_at") is None for job in jobs):
        return " | submit->completed n/a"
    spans = [ts(job["finished_at"]) - ts(job["created_at"]) for job in jobs]
    statuses = sorted({str(job["status"]) for job in jobs})
    return (
        f" | submit->completed p50 {statistics.median(spans) * 1e3:6.2f} ms"
        f" p99 {percentile(spans, 99) * 1e3:7.2f} ms {statuses}"
    )


async def run_floor(workdir: Path, args: argparse.Namespace) -> None:
    server = floor(workdir)
    try:
        cpu0, t0 = cpu_seconds(server.proc.pid), time.perf_counter()
        bodies = [b'{"params": {}}'] * args.jobs
        _, latencies = await post_many(
            server.port, "/api/v1/tasks/noop/$execute", bodies, args.concurrency
        )
        seconds, cpu = time.perf_counter() - t0, cpu_seconds(server.proc.pid) - cpu0
        print(line("floor", args.jobs, seconds, cpu, latencies), end="")
        print(f" | RSS {rss_mib(server.proc.pid):.1f} MiB")
    finally:
        server.stop()


async def run_single(workdir: Path, args: argparse.Namespace, worker: bool) -> None:
    name = "single" if worker else "submit-only"
    extra = () if worker else ("--no-worker",)
    server = taskexec(workdir, name, args.max_concurrency, *extra)
    try:
        rss0 = rss_mib(server.proc.pid)
        cpu0, t0 = cpu_seconds(server.proc.pid), time.perf_counter()
        bodies = [b'{"params": {}}'] * args.jobs
        answers, latencies = await post_many(
            server.port, "/api/v1/tasks/noop/$execute", bodies, args.concurrency
        )
        if worker:
            await wait_done(server)
        seconds, cpu = time.perf_counter() - t0, cpu_seconds(server.proc.pid) - cpu0
        rss1 = rss_mib(server.proc.pid)
        print(line(name, args.jobs, seconds, cpu, latencies), end="")
        if worker:
            ids = [json.loads(answer)["job_id"] for answer in answers]
            print(completion(await job_times(server, ids)), end="")
        print(f" | RSS {rss0:.1f} -> {rss1:.1f} MiB")
    finally:
        server.stop()


async def run_batch(workdir: Path, args: argparse.Namespace, worker: bool = True) -> None:
    name = "batch" if worker else "batch-submit"
    extra = () if worker else ("--no-worker",)
    server = taskexec(workdir, name, args.max_concurrency, *extra)
    try:
        path = "/api/v1/tasks/noop/$execute-many"
        size = args.batch
        body = json.dumps({"items": [{"params": {}}] * size}).encode()
        async with httpx.AsyncClient(base_url=server.base) as probe:
            check = await probe.post(
                path, content=body, headers={"content-type": "application/json"}
            )
        if check.status_code != 202:
            print(f"{name:<12} n/a: {path} answered {check.status_code}")
            return
        if worker:
            await wait_done(server)
        batches = max(1, args.jobs // size)
        cpu0, t0 = cpu_seconds(server.proc.pid), time.perf_counter()
        answers, latencies = await post_many(
            server.port, path, [body] * batches, min(args.concurrency, batches)
        )
        if worker:
            await wait_done(server)
        seconds, cpu = time.perf_counter() - t0, cpu_seconds(server.proc.pid) - cpu0
        jobs = batches * size
        label = f"batch x{size}" if worker else f"submit x{size}"
        print(line(label, jobs, seconds, cpu, latencies), end="")
        if worker:
            ids = [job_id for answer in answers for job_id in json.loads(answer)["job_ids"]]
            print(completion(await job_times(server, ids)), end="")
        print(f" | RSS {rss_mib(server.proc.pid):.1f} MiB")
    finally:
        server.stop()


async def run_idle_start(workdir: Path, args: argparse.Namespace) -> None:
    server = taskexec(workdir, "idle-start", args.max_concurrency)
    try:
        delays: list[float] = []
        client = RawClient("127.0.0.1", server.port)
        async with httpx.AsyncClient(base_url=server.base, timeout=30) as reader:
            for _ in range(args.idle_jobs):
                status, answer = await client.post_json("/api/v1/tasks/noop/$execute", b"{}")
                answered = time.time()
                if status != 202:
                    raise SystemExit(f"$execute: {status} {answer!r}")
                job_id = json.loads(answer)["job_id"]
                job = (await reader.get(f"/api/v1/jobs/{job_id}", params={"wait": 10})).json()
                delays.append(ts(job["started_at"]) - answered)
                await asyncio.sleep(0.05)  # pacing: each job arrives at an idle server
        await client.close()
        print(
            f"idle-start   {len(delays)} jobs one at a time | started after the 202: "
            f"p50 {statistics.median(delays) * 1e3:6.2f} ms"
            f" p99 {percentile(delays, 99) * 1e3:6.2f} ms (negative: before the client read it)"
        )
    finally:
        server.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32, help="HTTP connections")
    parser.add_argument("--max-concurrency", type=int, default=8, help="server job slots")
    parser.add_argument("--batch", type=int, default=100, help="items per $execute-many")
    parser.add_argument("--idle-jobs", type=int, default=200)
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    args = parser.parse_args()
    print(
        f"{args.jobs} no-op jobs, {args.concurrency} connections, "
        f"max_concurrency {args.max_concurrency}, SQLite, {os.cpu_count()} cores"
    )
    with tempfile.TemporaryDirectory(prefix="taskexec-http-") as tmp:
        workdir = Path(tmp)
        for scenario in args.scenarios:
            if scenario == "floor":
                await run_floor(workdir, args)
            elif scenario == "single":
                await run_single(workdir, args, worker=True)
            elif scenario == "submit-only":
                await run_single(workdir, args, worker=False)
            elif scenario == "batch":
                await run_batch(workdir, args)
            elif scenario == "batch-submit":
                await run_batch(workdir, args, worker=False)
            else:
                await run_idle_start(workdir, args)


if __name__ == "__main__":
    asyncio.run(main())
