"""Job lists over a long history (retention off): does the loop stay responsive?

Starts `taskexec serve` on a fresh SQLite file, bulk-inserts `--jobs` finished jobs, then runs
`--lists` concurrent loops of `GET /api/v1/jobs?status=completed` for `--seconds` while one
client probes `GET /health` every 100 ms. Prints /health latency (p50, max) and page times.

    .venv/bin/python bench/list_history.py                       # this tree
    .venv/bin/python bench/list_history.py --source /tmp/base    # another checkout
"""

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from bulk import insert_jobs
from serverproc import ROOT, Server


async def list_loop(client: httpx.AsyncClient, stop: float, times: list[float]) -> None:
    while time.monotonic() < stop:
        started = time.monotonic()
        response = await client.get("/api/v1/jobs", params={"status": "completed"})
        response.raise_for_status()
        times.append(time.monotonic() - started)


async def health_loop(client: httpx.AsyncClient, stop: float, times: list[float]) -> None:
    while time.monotonic() < stop:
        started = time.monotonic()
        (await client.get("/health")).raise_for_status()
        times.append(time.monotonic() - started)
        await asyncio.sleep(0.1)


async def measure(url: str, lists: int, seconds: float) -> None:
    page_times: list[float] = []
    health_times: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        first = await client.get("/api/v1/jobs", params={"status": "completed", "limit": 1})
        print(f"total reported: {first.json()['total']}")
        stop = time.monotonic() + seconds
        await asyncio.gather(
            health_loop(client, stop, health_times),
            *(list_loop(client, stop, page_times) for _ in range(lists)),
        )
    print(
        f"{lists} concurrent lists for {seconds:g} s: {len(page_times)} pages, "
        f"page p50 {statistics.median(page_times) * 1000:.0f} ms, "
        f"max {max(page_times) * 1000:.0f} ms"
    )
    print(
        f"/health during lists: {len(health_times)} probes, "
        f"p50 {statistics.median(health_times) * 1000:.0f} ms, "
        f"max {max(health_times) * 1000:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", type=Path, default=ROOT)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--lists", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), source=args.source, env={"TASKEXEC_LOAD_EXAMPLES": "false"})
        try:
            started = time.monotonic()
            insert_jobs(Path(tmp) / "bench.db", args.jobs, params_json='{"n": 1}')
            print(f"inserted {args.jobs} finished jobs in {time.monotonic() - started:.1f} s")
            asyncio.run(measure(server.url, args.lists, args.seconds))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
