"""All artifact SQL. Repositories flush, never commit."""

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.artifacts.models import Artifact
from app.core.clock import new_id, utcnow
from app.core.pagination import keys_within_budget, stored_bytes


class ArtifactRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, data: Any, job_id: str | None = None) -> Artifact:
        artifact = Artifact(id=new_id(), job_id=job_id, data=data, created_at=utcnow())
        self.session.add(artifact)
        await self.session.flush()
        return artifact

    async def get(self, artifact_id: str) -> Artifact | None:
        return await self.session.get(Artifact, artifact_id)

    async def list_page(
        self,
        *,
        job_id: str | None,
        limit: int,
        offset: int,
        max_bytes: int | None = None,
        count_max: int | None = None,
    ) -> tuple[list[Artifact], int]:
        """Newest first, at most `limit` artifacts and (when given) `max_bytes` of their data,
        at least one; the total counts at most `count_max` artifacts past the page."""
        conditions = [] if job_id is None else [Artifact.job_id == job_id]
        dialect = self.session.get_bind().dialect.name
        sizes = (
            select(Artifact.id, stored_bytes(Artifact.data, dialect))
            .where(*conditions)
            .order_by(Artifact.id.desc())
        )

        async def sizes_at(skip: int, count: int) -> list[Any]:
            return list(await self.session.execute(sizes.limit(count).offset(offset + skip)))

        ids = await keys_within_budget(sizes_at, limit=limit, max_bytes=max_bytes)
        rows = []
        if ids:
            rows = list(
                await self.session.scalars(
                    select(Artifact).where(Artifact.id.in_(ids)).order_by(Artifact.id.desc())
                )
            )
        matching = select(Artifact.id).where(*conditions)
        if count_max is not None:
            matching = matching.limit(offset + limit + count_max)
        total = await self.session.scalar(select(func.count()).select_from(matching.subquery()))
        return rows, total or 0
