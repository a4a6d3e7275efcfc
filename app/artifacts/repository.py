"""All artifact SQL. Repositories flush, never commit."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.artifacts.models import Artifact
from app.core.clock import new_id, utcnow
from app.core.pagination import keys_within_budget, stored_bytes
from app.db.base import table_of
from app.jobs.models import Job

ARTIFACTS = table_of(Artifact)


class ArtifactRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, data: Any, job_id: str | None = None) -> Artifact:
        """An unnamed artifact (saved through `ArtifactManager.save`)."""
        values = {
            "id": new_id(),
            "job_id": job_id,
            "name": None,  # explicit: the column's default names a job's result record
            "kind": "json",
            "description": None,
            "parent_id": None,
            "level": 0,
            "data": data,
            "created_at": utcnow(),
        }
        await self.session.execute(insert(ARTIFACTS).values(**values))
        return Artifact(**values)

    async def upsert_named(self, values: dict[str, Any]) -> tuple[str, bool]:
        """Insert a named artifact of a job, or replace the one of that name.

        Returns its id (kept when replaced, so children stay attached) and whether it replaced
        one. One statement: concurrent writers of one name cannot both insert.
        """
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = insert(ARTIFACTS).values(**values)
        replaced = {
            key: stmt.excluded[key]
            for key in ("kind", "description", "parent_id", "level", "data", "created_at")
        }
        upsert = stmt.on_conflict_do_update(index_elements=["job_id", "name"], set_=replaced)
        artifact_id = (await self.session.execute(upsert.returning(ARTIFACTS.c.id))).scalar_one()
        return artifact_id, artifact_id != values["id"]

    async def get(self, artifact_id: str) -> Artifact | None:
        return await self.session.get(Artifact, artifact_id)

    async def get_named(self, job_id: str, name: str) -> Artifact | None:
        return (
            await self.session.scalars(
                select(Artifact).where(Artifact.job_id == job_id, Artifact.name == name)
            )
        ).one_or_none()

    async def id_of(self, job_id: str, name: str) -> str | None:
        return await self.session.scalar(
            select(Artifact.id).where(Artifact.job_id == job_id, Artifact.name == name)
        )

    async def parent_of(self, artifact_id: str) -> tuple[str | None, int] | None:
        """(parent_id, level) of an artifact, or None if it does not exist."""
        row = (
            await self.session.execute(
                select(Artifact.parent_id, Artifact.level).where(Artifact.id == artifact_id)
            )
        ).one_or_none()
        return None if row is None else (row[0], row[1])

    async def children_of(self, parent_ids: Sequence[str], *, limit: int) -> list[Artifact]:
        """Children of any of `parent_ids`, at most `limit`: by their jobs in the order a
        flow's tree shows them (spawn order, a map's items by index), each job's oldest
        first; artifacts of no job come first."""
        if not parent_ids:
            return []
        rows = await self.session.scalars(
            select(Artifact)
            .outerjoin(Job, Job.id == Artifact.job_id)
            .where(Artifact.parent_id.in_(list(parent_ids)))
            .order_by(
                Job.created_at.asc().nulls_first(),
                func.coalesce(Job.map_index, -1),
                Artifact.job_id.asc().nulls_first(),
                Artifact.id,
            )
            .limit(limit)
        )
        return list(rows)

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
