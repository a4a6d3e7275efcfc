"""The claim walks the claim index in its order on SQLite: no sort of the whole queue."""

from typing import Any

from sqlalchemy import create_engine, event

from app.core.clock import utcnow
from app.jobs.store.claims import _CANDIDATES


def test_sqlite_claim_reads_the_queue_in_index_order(sqlite_database_url: str) -> None:
    engine = create_engine(sqlite_database_url.replace("+aiosqlite", ""))

    @event.listens_for(engine, "before_cursor_execute", retval=True)
    def explain(*args: Any) -> tuple[str, Any]:
        return f"EXPLAIN QUERY PLAN {args[2]}", args[3]

    try:
        with engine.connect() as connection:
            params = {"b_now": utcnow(), "b_names": ["noop"], "b_limit": 64}
            plan = [row[3] for row in connection.execute(_CANDIDATES, params)]
    finally:
        engine.dispose()

    assert any("ix_jobs_claim_order" in step for step in plan), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan
