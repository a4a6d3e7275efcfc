"""Tasks served by the dashboard's browser tests (`TASKEXEC_TASK_MODULES=tests.ui.tasks`).

`hold` logs lines and reports progress, then waits for a release file, so a test decides when
it ends; `describe` takes one parameter of each kind the run form knows; `fan_out` maps
`leaf` children that wait for a release file too, and sums their results.
"""

import asyncio
import time
from enum import StrEnum
from pathlib import Path

from app.jobs.context import JobContext
from app.tasks.registry import TaskRegistry

POLL_SECONDS = 0.02


class Color(StrEnum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


@TaskRegistry.register("describe", tags=["ui", "forms"])
def describe(
    name: str,
    count: int,
    ratio: float = 0.5,
    loud: bool = False,
    color: Color = Color.RED,
    items: list[int] | None = None,
) -> dict[str, object]:
    """Echo every kind of parameter back, so a test can see what the form sent."""
    return {
        "name": name.upper() if loud else name,
        "count": count,
        "ratio": ratio,
        "loud": loud,
        "color": color.value,
        "items": items or [],
    }


async def released(release: str) -> None:
    """Return once the file `release` exists (fail after 60 s)."""
    path = Path(release)
    deadline = time.monotonic() + 60
    # One stat of a local file per poll: too cheap to be worth a thread hop.
    while not path.exists():  # noqa: ASYNC240
        if time.monotonic() > deadline:
            raise TimeoutError("not released within 60 s")
        await asyncio.sleep(POLL_SECONDS)


@TaskRegistry.register("hold", tags=["ui", "blocking"])
async def hold(release: str, ctx: JobContext, lines: int = 3) -> dict[str, int]:
    """Log `lines` lines with progress, then wait until the file `release` exists."""
    for number in range(1, lines + 1):
        ctx.logger.info("line %d of %d", number, lines)
        ctx.progress(number, lines + 1, message=f"logged {number}")
    await released(release)
    ctx.logger.info("released")
    return {"lines": lines}


@TaskRegistry.register("leaf", tags=["ui", "flow"])
async def leaf(n: int, release: str) -> int:
    """Wait until the file `release` exists, then return `n` squared."""
    await released(release)
    return n * n


@TaskRegistry.register("fan_out", tags=["ui", "flow"])
async def fan_out(count: int, release: str, ctx: JobContext) -> int:
    """Map `count` leaf children and return the sum of their results."""
    children = ctx.map("leaf", [{"n": n, "release": release} for n in range(count)])
    return sum(await ctx.gather(*children))
