"""All artifact SQL. Repositories flush, never commit."""

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.artifacts.models import Artifact
from app.core.clock import new_id, utcnow


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
        self, *, job_id: str | None, limit: int, offset: int
    ) -> tuple[list[Artifact], int]:
        query = select(Artifact)
        count = select(func.count()).select_from(Artifact)
        if job_id is not None:
            query = query.where(Artifact.job_id == job_id)
            count = count.where(Artifact.job_id == job_id)
        rows = await self.session.scalars(
            query.order_by(Artifact.id.desc()).limit(limit).offset(offset)
        )
        total = await self.session.scalar(count)
        return list(rows), total or 0
