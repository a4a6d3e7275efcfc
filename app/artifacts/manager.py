"""`ArtifactManager`: store and read artifacts, injectable into tasks."""

from typing import Any

from app.artifacts.repository import ArtifactRepository
from app.artifacts.schemas import ArtifactIn, ArtifactRead
from app.db.database import Database


class ArtifactManager:
    """Saves and reads artifacts, each save in its own short transaction.

    Tasks receive one by annotation: `async def task(artifact_manager: ArtifactManager)`.
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    async def save(self, artifact: ArtifactIn | Any, *, job_id: str | None = None) -> ArtifactRead:
        """Store `artifact` (an `ArtifactIn`, or any JSON value as its data).

        Called from a task that was given an `AsyncSession`, the artifact is written in that
        session's transaction (committed when the task succeeds).
        """
        if not isinstance(artifact, ArtifactIn):
            artifact = ArtifactIn(data=artifact, job_id=job_id)
        async with self.database.joined_transaction() as session:
            row = await ArtifactRepository(session).add(
                artifact.model_dump(mode="json")["data"], job_id=artifact.job_id or job_id
            )
            return ArtifactRead.model_validate(row)

    async def get(self, artifact_id: str) -> ArtifactRead | None:
        async with self.database.read_session() as session:
            row = await ArtifactRepository(session).get(artifact_id)
            return None if row is None else ArtifactRead.model_validate(row)

    async def list_for_job(self, job_id: str, *, limit: int = 100) -> list[ArtifactRead]:
        async with self.database.read_session() as session:
            rows, _ = await ArtifactRepository(session).list_page(
                job_id=job_id, limit=limit, offset=0
            )
            return [ArtifactRead.model_validate(row) for row in rows]
