"""Group commit: concurrent writers share one transaction instead of queueing for one each.

While a batch is being written, new items wait; the next transaction takes all of them. An idle
system writes a lone item at once (no added delay); a busy one commits many items per
transaction, which is what makes a single-writer database such as SQLite fast under load.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.database import Database

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

WriteBatch = Callable[[AsyncSession, Sequence[T]], Awaitable[Sequence[R]]]


class BatchWriter(Generic[T, R]):
    """Writes items through `write(session, items)` in shared transactions.

    `write` returns one result per item, in order. If a batch fails, its items are retried one
    by one so a single bad item fails only its own caller.
    """

    def __init__(self, database: Database, write: WriteBatch[T, R], *, max_batch: int = 256):
        self.database = database
        self._write = write
        self._max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Write `item` (with whatever else is waiting) and return its result."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        # The write goes ahead even if this caller stops waiting: accepted means written.
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                results = await self._commit([item for item, _ in batch])
            except Exception as exc:
                if len(batch) == 1:
                    _fail(batch[0][1], exc)
                    continue
                logger.warning("batch write failed; retrying items one by one", exc_info=True)
                for item, future in batch:
                    try:
                        (result,) = await self._commit([item])
                    except Exception as item_exc:
                        _fail(future, item_exc)
                    else:
                        _succeed(future, result)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                _succeed(future, result)

    async def _commit(self, items: list[T]) -> Sequence[R]:
        async with self.database.transaction() as session:
            return await self._write(session, items)


def _succeed(future: "asyncio.Future[R]", result: R) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: "asyncio.Future[R]", exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
