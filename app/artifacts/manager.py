"""`ArtifactManager`: store and read artifacts, injectable into tasks."""

from typing import Any

from app.artifacts.hierarchy import DEFAULT_HIERARCHY, ArtifactHierarchy
from app.artifacts.kinds import ArtifactInvalid, check_description, check_name, normalise
from app.artifacts.repository import ArtifactRepository
from app.artifacts.schemas import ArtifactIn, ArtifactRead
from app.core.clock import new_id, utcnow
from app.db.database import Database
from app.jobs.events import EventBus
from app.jobs.store.job_store import JobStore

ARTIFACT_CREATED = "artifact_created"
DEFAULT_MAX_BYTES = 1024 * 1024


class ArtifactManager:
    """Saves and reads artifacts, each save in its own short transaction.

    Tasks receive one by annotation: `async def task(artifact_manager: ArtifactManager)`;
    named artifacts of the running job are easier through `JobContext.add_artifact`.
    """

    def __init__(
        self,
        database: Database,
        *,
        bus: EventBus | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        hierarchy: ArtifactHierarchy = DEFAULT_HIERARCHY,
    ) -> None:
        self.database = database
        self.bus = bus
        self.max_bytes = max_bytes
        self.hierarchy = hierarchy

    async def save(self, artifact: ArtifactIn | Any, *, job_id: str | None = None) -> ArtifactRead:
        """Store `artifact` (an `ArtifactIn`, or any JSON value as its data), unnamed.

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

    async def add_named(
        self,
        job_id: str,
        name: str,
        data: Any,
        *,
        kind: str = "json",
        description: str | None = None,
        parent_id: str | None = None,
    ) -> ArtifactRead:
        """Store (or replace) the artifact `name` of job `job_id`, with an `artifact_created`
        event in the same transaction. `ArtifactInvalid` or `ArtifactTooLarge` when it cannot
        be stored as given."""
        check_name(name)
        check_description(description)
        artifact_kind, stored = normalise(kind, data, max_bytes=self.max_bytes)
        now = utcnow()
        # The event bumps the job row's event counter. On PostgreSQL that row lock must not
        # live on in a task's own open transaction (heartbeats and progress would wait for
        # it), so the artifact commits at once. On SQLite a second writer would wait for the
        # task's open write transaction while the task waits for it: join that transaction.
        if self.database.is_sqlite:
            transaction = self.database.joined_transaction()
        else:
            transaction = self.database.transaction()
        async with transaction as session:
            repo = ArtifactRepository(session)
            level = await self._level_under(repo, job_id, name, parent_id)
            values = {
                "id": new_id(),
                "job_id": job_id,
                "name": name,
                "kind": artifact_kind.value,
                "description": description,
                "parent_id": parent_id,
                "level": level,
                "data": stored,
                "created_at": now,
            }
            artifact_id, replaced = await repo.upsert_named(values)
            event = {
                "artifact_id": artifact_id,
                "name": name,
                "kind": artifact_kind.value,
                "parent_id": parent_id,
                "level": level,
                "replaced": replaced,
            }
            effects = await JobStore.append_in(session, job_id, [(ARTIFACT_CREATED, event)])
        if self.bus is not None:
            self.bus.publish(effects.changed)
        return ArtifactRead.model_validate({**values, "id": artifact_id})

    async def _level_under(
        self, repo: ArtifactRepository, job_id: str, name: str, parent_id: str | None
    ) -> int:
        """The level of a child of `parent_id`; refuses unknown parents, cycles, depth."""
        if parent_id is None:
            return 0
        parent = await repo.parent_of(parent_id)
        if parent is None:
            raise ArtifactInvalid(f"parent artifact {parent_id} does not exist")
        level = parent[1] + 1
        if level > self.hierarchy.max_level:
            raise ArtifactInvalid(
                f"artifact hierarchy {self.hierarchy.name!r} allows levels 0 to "
                f"{self.hierarchy.max_level}; a child of {parent_id} would be level {level}"
            )
        existing = await repo.id_of(job_id, name)
        ancestor: str | None = parent_id
        for _ in range(self.hierarchy.max_level + 1):
            if ancestor is None:
                break
            if ancestor == existing:
                raise ArtifactInvalid(f"artifact {name!r} cannot nest under its own descendant")
            found = await repo.parent_of(ancestor)
            ancestor = found[0] if found is not None else None
        return level

    async def get(self, artifact_id: str) -> ArtifactRead | None:
        async with self.database.read_session() as session:
            row = await ArtifactRepository(session).get(artifact_id)
            return None if row is None else ArtifactRead.model_validate(row)

    async def get_named(self, job_id: str, name: str) -> ArtifactRead | None:
        async with self.database.read_session() as session:
            row = await ArtifactRepository(session).get_named(job_id, name)
            return None if row is None else ArtifactRead.model_validate(row)

    async def list_for_job(self, job_id: str, *, limit: int = 100) -> list[ArtifactRead]:
        async with self.database.read_session() as session:
            rows, _ = await ArtifactRepository(session).list_page(
                job_id=job_id, limit=limit, offset=0
            )
            return [ArtifactRead.model_validate(row) for row in rows]
