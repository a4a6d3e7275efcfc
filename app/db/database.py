"""The `Database` handle: engine, sessions, and a single writer path on SQLite."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000

# The session a running task was given, if any (set by the runner in the task's context).
# Writes the service makes on the task's behalf join it: on SQLite a second writer would wait
# for the task's own open write transaction, which waits for it, a deadlock.
ambient_session: ContextVar[AsyncSession | None] = ContextVar(
    "taskexec_ambient_session", default=None
)


class Database:
    """A database the service and its tasks share.

    `session()` gives a session for reads or for a task's own work. `transaction()` is the writer
    path: one short transaction that commits on success and rolls back on error. On SQLite every
    write transaction in this process goes through one lock and starts with `BEGIN IMMEDIATE`, so
    concurrent writers queue instead of failing with "database is locked"; other processes wait on
    SQLite's busy timeout.
    """

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        engine_args: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            engine_args["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
            # Sessions and connections always end their transaction before returning a
            # connection, so the pool's extra reset ROLLBACK is one more thread hop for nothing.
            engine_args["pool_reset_on_return"] = None
        else:
            engine_args.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(self.url, **engine_args)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    def session(self) -> AsyncSession:
        """A new session; the caller owns its transaction (`async with db.session() as s:`)."""
        return self._sessions()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One write transaction: commit on success, roll back on error."""
        if self._write_lock is None:
            async with self._sessions() as session, session.begin():
                yield session
            return
        async with self._write_lock, self._sessions() as session:
            await session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise
            await session.commit()

    @asynccontextmanager
    async def joined_transaction(self) -> AsyncIterator[AsyncSession]:
        """A write that joins the running task's session (as a savepoint) when there is one,
        and is its own short transaction otherwise."""
        session = ambient_session.get()
        if session is None:
            async with self.transaction() as own:
                yield own
            return
        async with session.begin_nested():
            yield session

    async def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def _configure_sqlite(engine: AsyncEngine) -> None:
    """WAL, foreign keys, and explicit BEGIN so `BEGIN IMMEDIATE` is possible."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy emit BEGIN itself (pysqlite's implicit transactions get in the way).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")
