"""Paginated lists: `{"items", "total", "limit", "offset"}`."""

from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list, newest first."""

    items: list[T]
    total: int
    limit: int
    offset: int


class PageParams(BaseModel):
    limit: int
    offset: int


LimitQuery = Annotated[
    int | None, Query(ge=1, description="Page size (default 50; larger values are capped).")
]
OffsetQuery = Annotated[int, Query(ge=0, le=10_000_000, description="Items to skip.")]
