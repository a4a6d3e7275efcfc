"""Group commit: writers share transactions; a joining writer adds its item to them."""

import asyncio
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.batching import GroupCommit
from app.db.database import Database


class Recorder:
    """Writes nothing: notes which transaction (by its connection's id) each item shared."""

    def __init__(self) -> None:
        self.transactions: list[list[str]] = []

    async def write(self, session: AsyncSession, items: Sequence[str]) -> list[str]:
        await session.execute(text("SELECT 1"))
        marker = id(session)
        if not self.transactions or self.transactions[-1][0] != str(marker):
            self.transactions.append([str(marker)])
        self.transactions[-1] += items
        return [f"{item} written" for item in items]


class Refill:
    """A join that offers one item per transaction, `budget` times."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.results: list[str] = []
        self.done_once = asyncio.Event()

    def offer(self) -> str | None:
        if self.budget == 0:
            return None
        self.budget -= 1
        return f"refill {self.budget}"

    def done(self, item: str, result: "asyncio.Future[str]") -> None:
        self.results.append(result.result())
        self.done_once.set()


async def test_a_joining_writer_adds_its_item_to_transactions_others_start(
    database: Database,
) -> None:
    recorder = Recorder()
    refill = Refill(budget=1)
    group = GroupCommit(database)
    ends = group.writer(recorder.write)
    group.writer(recorder.write, join=refill)

    answers = await asyncio.gather(ends.submit("end a"), ends.submit("end b"))
    await asyncio.wait_for(refill.done_once.wait(), 10)

    assert list(answers) == ["end a written", "end b written"]
    # One transaction: the two ends, then the item the join offered.
    assert [items[1:] for items in recorder.transactions] == [["end a", "end b", "refill 0"]]
    assert refill.results == ["refill 0 written"]


async def test_a_writer_with_items_of_its_own_is_not_asked_to_join(database: Database) -> None:
    recorder = Recorder()
    refill = Refill(budget=5)
    group = GroupCommit(database)
    group.writer(recorder.write)
    joining = group.writer(recorder.write, join=refill)

    assert await joining.submit("own item") == "own item written"

    assert refill.budget == 5
    assert refill.results == []
