"""A flow: extract rows, map a transform over chunks of them, load the results.

Run it from the repository root:

    uvicorn examples.etl_flow.main:app

then start the flow and follow it:

    curl -X POST localhost:8000/api/v1/tasks/etl/\\$execute -H 'content-type: application/json' \\
         -d '{"params": {"rows": 40, "chunk_size": 10}}'
    curl localhost:8000/api/v1/jobs/<job_id>/tree

`etl` is the parent: it spawns `extract`, maps `transform` over its chunks (one child job per
chunk, run by any worker, at most `max_concurrency` at once) and spawns `load` with what they
return. While it waits for its children it holds no concurrency slot, so the flow completes
under any limit. Every step has a key, so if the service is killed midway the re-run parent
finds the children it made instead of making them again.

Tasks register when this module is imported; `register_tasks()` skips tasks already there.
"""

from typing import Any

from fastapi import FastAPI

from app import JobContext, ServiceBuilder, ServiceInfo, Settings, TaskRegistry

TASKS = ("etl", "extract", "load", "transform")


async def extract(rows: int, chunk_size: int) -> list[list[dict[str, Any]]]:
    """Read `rows` source rows and cut them into chunks of `chunk_size`."""
    source = [{"id": n, "amount": n * 1.5, "country": "NO" if n % 3 else "SE"} for n in range(rows)]
    return [source[start : start + chunk_size] for start in range(0, rows, chunk_size)]


def transform(chunk: list[dict[str, Any]], rate: float = 0.1) -> dict[str, Any]:
    """Add tax to each row of one chunk and total it per country (sync: runs in a thread)."""
    totals: dict[str, float] = {}
    for row in chunk:
        totals[row["country"]] = totals.get(row["country"], 0.0) + row["amount"] * (1 + rate)
    return {"rows": len(chunk), "totals": {k: round(v, 2) for k, v in sorted(totals.items())}}


async def load(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Combine the transformed chunks into one summary (a real flow would write it somewhere)."""
    totals: dict[str, float] = {}
    for part in parts:
        for country, amount in part["totals"].items():
            totals[country] = round(totals.get(country, 0.0) + amount, 2)
    return {"rows": sum(part["rows"] for part in parts), "chunks": len(parts), "totals": totals}


async def etl(ctx: JobContext, rows: int = 100, chunk_size: int = 10) -> dict[str, Any]:
    """Extract -> map transform over the chunks -> load; returns the loaded summary."""
    chunks = await ctx.spawn("extract", {"rows": rows, "chunk_size": chunk_size}, key="extract")
    parts = await ctx.gather(*ctx.map("transform", [{"chunk": c} for c in chunks], key="chunk"))
    summary: dict[str, Any] = await ctx.spawn("load", {"parts": parts}, key="load")
    return summary


def register_tasks() -> None:
    """Register the flow's tasks (once per registry)."""
    for name, fn in (("etl", etl), ("extract", extract), ("transform", transform), ("load", load)):
        if not TaskRegistry.has(name):
            TaskRegistry.register_function(name, fn, tags=["etl"])


def build_app(settings: Settings | None = None) -> FastAPI:
    return (
        ServiceBuilder(info=ServiceInfo(display_name="ETL flow"), settings=settings)
        .with_health()
        .with_tasks()
        .build()
    )


register_tasks()
app = build_app()
