"""Group commit: concurrent writers share one transaction instead of queueing for one each.

While a batch is being written, new items wait; the next transaction takes all of them. An idle
system writes a lone item at once (no added delay); a busy one commits many items per
transaction, which is what makes a single-writer database such as SQLite fast under load.

Each kind of item has its own typed `BatchWriter`; writers made from one `GroupCommit` share
its transactions (e.g. a worker's finished attempts and its next claim commit together). A
writer may also offer an item of its own to each transaction another writer starts (`join`):
a worker claims jobs for the slots its finished attempts freed in the transaction that records
those ends, instead of in a second one.
"""

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.database import Database

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

WriteBatch = Callable[[AsyncSession, Sequence[T]], Awaitable[Sequence[R]]]
# Called once per committed batch with its items and their results, in order (e.g. to apply
# their effects together).
AfterBatch = Callable[[Sequence[T], Sequence[R]], None]


class Join(Protocol[T, R]):
    """What a writer adds to transactions other writers start."""

    def offer(self) -> T | None:
        """An item to write now, or None."""

    def done(self, item: T, result: "asyncio.Future[R]") -> None:
        """The offered item was written (or failed): its future is done."""


class _Taken(Protocol):
    """Items of one writer taken for one transaction."""

    @property
    def size(self) -> int: ...

    async def write(self, session: AsyncSession) -> None: ...

    def succeed(self) -> None: ...

    def fail(self, exc: BaseException) -> None: ...

    def split(self) -> "list[_Taken]": ...


class _Source(Protocol):
    """A writer the group takes items from."""

    def _take(self, limit: int) -> _Taken | None: ...

    def _offer(self) -> _Taken | None: ...


class _Batch(Generic[T, R]):
    def __init__(
        self,
        write: WriteBatch[T, R],
        pending: list[tuple[T, "asyncio.Future[R]"]],
        after: AfterBatch[T, R] | None,
    ):
        self._write = write
        self._pending = pending
        self._after = after
        self._results: Sequence[R] = ()

    @property
    def size(self) -> int:
        return len(self._pending)

    async def write(self, session: AsyncSession) -> None:
        self._results = await self._write(session, [item for item, _ in self._pending])

    def succeed(self) -> None:
        if self._after is not None:
            try:
                self._after([item for item, _ in self._pending], self._results)
            except Exception:
                logger.exception("after-commit step of a batch failed")
        for (_, future), result in zip(self._pending, self._results, strict=True):
            if not future.done():
                future.set_result(result)

    def fail(self, exc: BaseException) -> None:
        for _, future in self._pending:
            if not future.done():
                future.set_exception(exc)

    def split(self) -> "list[_Taken]":
        return [_Batch(self._write, [pair], self._after) for pair in self._pending]


class GroupCommit:
    """Drains every writer made by `writer()` through shared transactions.

    If a transaction fails, its items are retried one by one so a single bad item fails only
    its own caller.
    """

    def __init__(self, database: Database, *, max_batch: int = 256) -> None:
        self.database = database
        self._max_batch = max_batch
        self._writers: list[_Source] = []
        self._drainer: asyncio.Task[None] | None = None

    def writer(
        self,
        write: WriteBatch[T, R],
        *,
        after: AfterBatch[T, R] | None = None,
        join: Join[T, R] | None = None,
    ) -> "BatchWriter[T, R]":
        """A typed writer whose items share this group's transactions (in creation order);
        `after` runs once per committed batch, before the callers are answered; `join` is
        asked for an item whenever another writer's items start a transaction."""
        return BatchWriter(self.database, write, group=self, after=after, join=join)

    def _add(self, writer: _Source) -> None:
        self._writers.append(writer)

    def _kick(self) -> None:
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())

    def _take(self) -> list[_Taken]:
        room = self._max_batch
        taken: dict[int, _Taken] = {}
        for index, writer in enumerate(self._writers):
            if room <= 0:
                break
            batch = writer._take(room)
            if batch is not None:
                taken[index] = batch
                room -= batch.size
        if taken:
            for index, writer in enumerate(self._writers):
                if index not in taken and (offered := writer._offer()) is not None:
                    taken[index] = offered
        return [taken[index] for index in sorted(taken)]

    async def _drain(self) -> None:
        while taken := self._take():
            try:
                await self._commit(taken)
            except Exception as exc:
                singles = [single for batch in taken for single in batch.split()]
                if len(singles) == 1:
                    singles[0].fail(exc)
                    continue
                logger.warning("batch write failed; retrying items one by one", exc_info=True)
                for single in singles:
                    try:
                        await self._commit([single])
                    except Exception as item_exc:
                        single.fail(item_exc)
                continue

    async def _commit(self, taken: list[_Taken]) -> None:
        async with self.database.transaction() as session:
            for batch in taken:
                await batch.write(session)
        for batch in taken:
            batch.succeed()


class BatchWriter(Generic[T, R]):
    """Writes items through `write(session, items)` in shared transactions.

    `write` returns one result per item, in order; `submit` returns an item's result once its
    transaction has committed.
    """

    def __init__(
        self,
        database: Database,
        write: WriteBatch[T, R],
        *,
        max_batch: int = 256,
        group: GroupCommit | None = None,
        after: AfterBatch[T, R] | None = None,
        join: Join[T, R] | None = None,
    ) -> None:
        self.database = database
        self._write = write
        self._after = after
        self._join = join
        self._group = group or GroupCommit(database, max_batch=max_batch)
        self._group._add(self)
        self._pending: list[tuple[T, asyncio.Future[R]]] = []

    async def submit(self, item: T) -> R:
        """Write `item` (with whatever else is waiting) and return its result."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        self._group._kick()
        # The write goes ahead even if this caller stops waiting (a cancelled future is
        # skipped when results are handed out): accepted means written.
        return await future

    def _take(self, limit: int) -> _Taken | None:
        if not self._pending:
            return None
        pending = self._pending[:limit]
        del self._pending[:limit]
        return _Batch(self._write, pending, self._after)

    def _offer(self) -> _Taken | None:
        if self._join is None or self._pending:
            return None
        item = self._join.offer()
        if item is None:
            return None
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        future.add_done_callback(functools.partial(self._join.done, item))
        return _Batch(self._write, [(item, future)], self._after)
