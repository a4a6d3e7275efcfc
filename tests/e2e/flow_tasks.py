"""Flow tasks served by the end-to-end server (with `tests.e2e.tasks`).

`mark` leaves its side effect in a file: one line "<index>" per run, appended with one small
`write` in append mode, so a child that ran twice shows twice. Items at or past `hold_from`
wait for the file `gate` before their side effect, so a test can kill the server while they
are running and nothing of theirs is applied yet.
"""

import asyncio
import time
from pathlib import Path

from app.jobs.context import JobContext
from app.tasks.registry import TaskRegistry

POLL_SECONDS = 0.01


def _append(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as log:
        log.write(line + "\n")


@TaskRegistry.register("mark", tags=["e2e", "flows"])
async def mark(index: int, log: str, gate: str, hold_from: int, max_wait: float = 60.0) -> int:
    """Append `index` to `log` (after `gate` exists, for the items at or past `hold_from`)."""
    if index >= hold_from:
        deadline = time.monotonic() + max_wait
        while not await asyncio.to_thread(Path(gate).exists):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"gate not opened within {max_wait} s")
            await asyncio.sleep(POLL_SECONDS)
    await asyncio.to_thread(_append, log, str(index))
    return index


@TaskRegistry.register("mark_all", tags=["e2e", "flows"])
async def mark_all(count: int, log: str, gate: str, hold_from: int, ctx: JobContext) -> int:
    """Map `mark` over `count` items and return the sum of their indexes."""
    items = [
        {"index": index, "log": log, "gate": gate, "hold_from": hold_from} for index in range(count)
    ]
    return sum(await ctx.gather(*ctx.map("mark", items)))
