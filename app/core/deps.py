"""Request dependencies: the objects the app's lifespan created, typed for handlers."""

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.pagination import LimitQuery, OffsetQuery, PageParams
from app.core.settings import Settings
from app.db.database import Database

if TYPE_CHECKING:
    from app.jobs.scheduler import JobScheduler


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def get_scheduler(request: Request) -> "JobScheduler":
    scheduler: JobScheduler = request.app.state.scheduler
    return scheduler


async def get_read_session(
    database: Annotated[Database, Depends(get_database)],
) -> AsyncIterator[AsyncSession]:
    """A session for reads; writes go through `Database.transaction()`."""
    async with database.read_session() as session:
        yield session


async def get_list_session(
    database: Annotated[Database, Depends(get_database)],
) -> AsyncIterator[AsyncSession]:
    """A session for list pages. A list may walk many rows, so on SQLite it runs on the
    task engine's connection thread, never on the event loop that serves other requests."""
    async with database.session() as session:
        yield session


async def get_page(
    settings: Annotated[Settings, Depends(get_settings)],
    limit: LimitQuery = None,
    offset: OffsetQuery = 0,
) -> PageParams:
    """`limit` defaults to the configured size and is capped at the configured maximum; the
    byte budget and the count bound come from settings."""
    size = settings.page_limit_default if limit is None else limit
    return PageParams(
        limit=min(size, settings.page_limit_max),
        offset=offset,
        max_bytes=settings.page_max_bytes,
        count_max=settings.page_count_max,
    )


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session)]
ListSessionDep = Annotated[AsyncSession, Depends(get_list_session)]
PageDep = Annotated[PageParams, Depends(get_page)]
