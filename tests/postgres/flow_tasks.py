"""Flow tasks for the PostgreSQL tests (served with `tests.postgres.tasks`)."""

from app.jobs.context import JobContext
from app.tasks.registry import TaskRegistry


async def fan_out(count: int, ctx: JobContext) -> dict[str, int]:
    """Map `pg_quick` over `count` items; return how many came back and their sum."""
    results = await ctx.gather(*ctx.map("pg_quick", [{"n": n} for n in range(count)]))
    return {"children": len(results), "sum": sum(result["n"] for result in results)}


def register_flow_tasks(registry: type[TaskRegistry]) -> None:
    registry.register_function("pg_fan_out", fan_out, tags=["postgres", "flows"])


register_flow_tasks(TaskRegistry)
