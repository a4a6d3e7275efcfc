"""The `Database` handle: engine, sessions, and a single writer path on SQLite."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from app.db.loop_sqlite import LOOP_BUSY_TIMEOUT_SECONDS, loop_connect_args, loop_url

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

    `session()` gives a session for a task's own work (or any caller that owns its
    transaction). `transaction()` is the service's writer path: one short transaction that
    commits on success and rolls back on error; `read_session()` is the service's read path.

    On SQLite the service's own statements run on the event loop (see `app.db.loop_sqlite`):
    every write transaction in this process goes through one lock and starts with
    `BEGIN IMMEDIATE`, retried without blocking the loop while another process holds the
    file's write lock. Sessions for task code use aiosqlite, off the loop.
    """

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            # Sessions and connections always end their transaction before returning a
            # connection, so the pool's reset ROLLBACK is work for nothing.
            self.engine: AsyncEngine = create_async_engine(
                loop_url(self.url),
                echo=echo,
                connect_args=loop_connect_args(),
                pool_reset_on_return=None,
            )
            self.task_engine = create_async_engine(
                self.url,
                echo=echo,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
                pool_reset_on_return=None,
            )
            # The loop engine must never wait on the loop: its lock waits are retried async.
            _configure_sqlite(self.engine, busy_timeout_ms=int(LOOP_BUSY_TIMEOUT_SECONDS * 1000))
            _configure_sqlite(self.task_engine, busy_timeout_ms=SQLITE_BUSY_TIMEOUT_MS)
        else:
            self.engine = create_async_engine(
                self.url,
                echo=echo,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=True,
            )
            self.task_engine = self.engine
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._task_sessions = async_sessionmaker(self.task_engine, expire_on_commit=False)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    def session(self) -> AsyncSession:
        """A new session for task code; the caller owns its transaction
        (`async with db.session() as s:`). Never runs queries on the event loop."""
        return self._task_sessions()

    def read_session(self) -> AsyncSession:
        """A session for the service's own short reads."""
        return self._sessions()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One write transaction: commit on success, roll back on error."""
        if self._write_lock is None:
            async with self._sessions() as session, session.begin():
                yield session
            return
        async with self._write_lock:
            session = await self._begin_immediate()
            async with session:
                try:
                    yield session
                except BaseException:
                    await session.rollback()
                    raise
                await session.commit()

    async def _begin_immediate(self) -> AsyncSession:
        """A session holding SQLite's write lock; waits for another process asynchronously."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SQLITE_BUSY_TIMEOUT_MS / 1000
        delay = 0.001
        while True:
            session = self._sessions()
            try:
                await session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
            except OperationalError as exc:
                await session.close()
                if "locked" not in str(exc) or loop.time() >= deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)
                continue
            return session

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
        async with self.read_session() as session:
            await session.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.task_engine is not self.engine:
            await self.task_engine.dispose()


def _configure_sqlite(engine: AsyncEngine, *, busy_timeout_ms: int) -> None:
    """WAL, foreign keys, and explicit BEGIN so `BEGIN IMMEDIATE` is possible."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy emit BEGIN itself (pysqlite's implicit transactions get in the way).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")
