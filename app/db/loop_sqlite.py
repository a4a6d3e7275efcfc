"""SQLite driven directly on the event loop, for the service's own short statements.

With aiosqlite every statement is several hand-offs to a thread and back (cursor, execute,
fetch, close), which costs far more than SQLite itself: a small write transaction takes
~3 ms that way and ~0.3 ms here. Only statements the service controls run on this path (claims,
results, submissions, API reads); sessions handed to task code keep using aiosqlite, so a
task's long query never blocks the loop. Lock waits are not done on the loop either: the busy
timeout here is tiny and `Database.transaction` retries `BEGIN IMMEDIATE` asynchronously.
"""

import sqlite3
from typing import Any

from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL
from sqlalchemy.pool import AsyncAdaptedQueuePool

DRIVER = "sqlite+taskexec_loop"
# Longest a lock wait may hold the loop before the error is retried asynchronously.
LOOP_BUSY_TIMEOUT_SECONDS = 0.02


class LoopCursor(sqlite3.Cursor):
    async def _async_soft_close(self) -> None:
        """What SQLAlchemy's asyncio results call on an adapted cursor; nothing to do here."""


class LoopConnection(sqlite3.Connection):
    def cursor(self, factory: Any = LoopCursor) -> Any:
        return super().cursor(factory)


class LoopSQLiteDialect(SQLiteDialect_pysqlite):
    """pysqlite, usable by `create_async_engine`: calls complete without awaiting."""

    is_async = True
    supports_statement_cache = True

    @classmethod
    def get_pool_class(cls, url: URL) -> type[AsyncAdaptedQueuePool]:
        return AsyncAdaptedQueuePool


def loop_url(url: URL) -> URL:
    """The same SQLite file, through this dialect."""
    if "taskexec_loop" not in registry.impls:
        registry.register("sqlite.taskexec_loop", __name__, "LoopSQLiteDialect")
    return url.set(drivername=DRIVER)


def loop_connect_args() -> dict[str, Any]:
    return {
        "factory": LoopConnection,
        "timeout": LOOP_BUSY_TIMEOUT_SECONDS,
        # Connections are only used on the loop's thread; the pool may close them elsewhere.
        "check_same_thread": False,
    }
