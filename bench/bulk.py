"""Fill a migrated SQLite file fast with sqlite3 `executemany`, bypassing the service.

Ids are ULID-shaped (26 Crockford characters) and sort in insertion order.
"""

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

INSERT_JOB = (
    "INSERT INTO jobs (id, task_name, status, params, priority, run_at, created_at, started_at,"
    " finished_at, attempts, max_attempts, event_seq) VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?, 1, 1, 0)"
)


def job_id(n: int) -> str:
    return f"01M8{n:022d}"


def now_text() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")


def insert_jobs(
    db_path: Path,
    count: int,
    *,
    status: str = "completed",
    params_json: str = "{}",
    task_name: str = "bench",
    start: int = 0,
    chunk: int = 50_000,
) -> None:
    """`count` jobs in `status`; finished ones have started/finished times."""
    now = now_text()
    finished = now if status in {"completed", "failed", "canceled"} else None
    started = now if status != "pending" else None
    with sqlite3.connect(db_path) as conn:
        conn.execute("PRAGMA synchronous=OFF")
        for first in range(start, start + count, chunk):
            last = min(first + chunk, start + count)
            conn.executemany(
                INSERT_JOB,
                (
                    (job_id(n), task_name, status, params_json, now, now, started, finished)
                    for n in range(first, last)
                ),
            )
            conn.commit()


def insert_events(db_path: Path, job: str, count: int, message_bytes: int) -> None:
    """`count` log events of `job`, each with a message of `message_bytes` bytes."""
    now = now_text()
    data = '{"level": "INFO", "logger": "bench", "message": "' + "m" * message_bytes + '"}'
    with sqlite3.connect(db_path) as conn:
        conn.executemany(
            "INSERT INTO job_events (job_id, seq, type, created_at, data)"
            " VALUES (?, ?, 'log', ?, ?)",
            ((job, seq, now, data) for seq in range(1, count + 1)),
        )
        conn.execute("UPDATE jobs SET event_seq = ? WHERE id = ?", (count, job))
