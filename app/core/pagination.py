"""Paginated lists: `{"items", "total", "limit", "offset"}`, bounded in count and in bytes.

A page holds at most `limit` items and stops early once its items' stored size would pass
the byte budget (`TASKEXEC_PAGE_MAX_BYTES`), as DynamoDB's 1 MB pages do; it always holds at
least one item. The client continues from `offset + len(items)`. Sizes are read first (a
number per row), and only the chosen rows' big columns are loaded.
"""

from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, LargeBinary, Text, cast, func, literal

T = TypeVar("T")

# What an item's fixed fields add to its JSON, beyond the big columns that are measured.
ITEM_OVERHEAD_BYTES = 512
# Sizes are read 16 rows first, then 64, 256...
FIRST_SIZE_CHUNK = 16

PAGING_NOTE = (
    "A page holds at most `limit` items and stops early when its items reach the byte budget "
    "(`TASKEXEC_PAGE_MAX_BYTES`; at least one item per page): continue from "
    "`offset + len(items)`, not `offset + limit`. `total` is exact up to "
    "`TASKEXEC_PAGE_COUNT_MAX` items past this page, and at least that beyond."
)


class Page(BaseModel, Generic[T]):
    """One page of a list. Continue from `offset + len(items)` (pages are bounded in bytes)."""

    items: list[T]
    total: int = Field(
        description="Items matching the filter: exact up to `TASKEXEC_PAGE_COUNT_MAX` past "
        "this page, a lower bound beyond."
    )
    limit: int
    offset: int


class PageParams(BaseModel):
    limit: int
    offset: int
    max_bytes: int
    count_max: int


LimitQuery = Annotated[
    int | None, Query(ge=1, description="Page size (default 50; larger values are capped).")
]
OffsetQuery = Annotated[int, Query(ge=0, le=10_000_000, description="Items to skip.")]


def stored_bytes(column: Any, dialect: str) -> ColumnElement[int]:
    """The size in bytes of a JSON or text column's stored value (0 for NULL)."""
    if dialect == "postgresql":
        size = func.octet_length(cast(column, Text))
    else:
        size = func.length(cast(column, LargeBinary))
    return func.coalesce(size, literal(0))


async def keys_within_budget(
    sizes: Callable[[int, int], Awaitable[Sequence[Any]]], *, limit: int, max_bytes: int | None
) -> list[Any]:
    """The leading keys (at most `limit`) whose sizes, plus a fixed overhead each, fit in
    `max_bytes`; at least the first.

    `sizes(skip, count)` returns up to `count` (key, size) rows from position `skip`. They
    are read in growing chunks, so a page of big items computes few sizes past its end (a
    size is computed from the stored value, which means reading it).
    """
    if max_bytes is None:
        return [row[0] for row in await sizes(0, limit)]
    chosen: list[Any] = []
    used = 0
    chunk = FIRST_SIZE_CHUNK
    while len(chosen) < limit:
        want = min(chunk, limit - len(chosen))
        rows = await sizes(len(chosen), want)
        for key, size in rows:
            used += int(size or 0) + ITEM_OVERHEAD_BYTES
            if chosen and used > max_bytes:
                return chosen
            chosen.append(key)
        if len(rows) < want:
            break
        chunk *= 4
    return chosen
