"""The store nests a flow's artifacts in the transaction that ends its jobs: a parent and its
children ending together, and flows deeper than the bound, on SQLite and PostgreSQL."""

import pytest

from app.artifacts.models import Artifact
from app.core.clock import new_id, utcnow
from app.db.database import Database
from app.jobs.events import EventBus
from app.jobs.models import Job, JobStatus
from app.jobs.store import AfterCommit, JobStore
from app.jobs.store.artifact_links import MAX_JOB_DEPTH
from tests.jobs.helpers import ago, artifacts_of, fetch_job, insert_job

WORKER = "host-a:100:aaaaaa"


@pytest.fixture
def store(database: Database) -> JobStore:
    return JobStore(database, AfterCommit(EventBus()))


async def lost_chain(database: Database, length: int) -> list[Job]:
    """A flow of `length` jobs, each the child of the one before, all running on a worker
    whose leases expired, each allowed no worker loss (recovery fails them together)."""
    jobs: list[Job] = []
    for _ in range(length):
        parent = jobs[-1] if jobs else None
        jobs.append(
            await insert_job(
                database,
                status=JobStatus.RUNNING,
                worker_id=WORKER,
                attempts=1,
                started_at=ago(2),
                lease_expires_at=ago(1),
                max_worker_losses=0,
                event_seq=2,
                parent_id=None if parent is None else parent.id,
                root_id=None if parent is None else parent.root_id or parent.id,
            )
        )
    return jobs


async def add_named(database: Database, job: Job, name: str, parent: str | None = None) -> str:
    """A named artifact of a running job, as `ctx.add_artifact` leaves it."""
    level = 0
    async with database.transaction() as session:
        if parent is not None:
            found = await session.get(Artifact, parent)
            assert found is not None
            level = found.level + 1
        artifact = Artifact(
            id=new_id(),
            job_id=job.id,
            name=name,
            kind="json",
            parent_id=parent,
            level=level,
            data={},
            created_at=utcnow(),
        )
        session.add(artifact)
    return artifact.id


async def placed(database: Database, artifact_id: str | None) -> tuple[str | None, int]:
    async with database.session() as session:
        artifact = await session.get(Artifact, artifact_id)
    assert artifact is not None
    return artifact.parent_id, artifact.level


async def test_a_parent_and_its_children_ending_together_nest_in_that_transaction(
    database: Database, store: JobStore
) -> None:
    root, child, grandchild = await lost_chain(database, 3)
    notes = await add_named(database, child, "notes")
    chart = await add_named(database, child, "chart", parent=notes)

    await store.recover_lost()

    root, child, grandchild = [await fetch_job(database, j.id) for j in (root, child, grandchild)]
    assert {j.status for j in (root, child, grandchild)} == {JobStatus.FAILED}
    assert await placed(database, root.result_artifact_id) == (None, 0)
    assert await placed(database, child.result_artifact_id) == (root.result_artifact_id, 1)
    assert await placed(database, grandchild.result_artifact_id) == (child.result_artifact_id, 2)
    # The child's named artifacts moved under its result, what hangs below them with them.
    assert await placed(database, notes) == (child.result_artifact_id, 2)
    assert await placed(database, chart) == (notes, 3)
    assert [a.name for a in await artifacts_of(database, child.id)] == ["notes", "chart", "result"]


async def test_jobs_deeper_than_the_bound_keep_their_artifacts_as_roots(
    database: Database, store: JobStore
) -> None:
    chain = await lost_chain(database, MAX_JOB_DEPTH + 2)
    deepest_nested, too_deep = chain[MAX_JOB_DEPTH], chain[MAX_JOB_DEPTH + 1]
    named = await add_named(database, deepest_nested, "notes")
    ignored = await add_named(database, too_deep, "notes")

    await store.recover_lost()

    above = await fetch_job(database, chain[MAX_JOB_DEPTH - 1].id)
    nested = await fetch_job(database, deepest_nested.id)
    beyond = await fetch_job(database, too_deep.id)
    assert await placed(database, nested.result_artifact_id) == (
        above.result_artifact_id,
        MAX_JOB_DEPTH,
    )
    assert await placed(database, named) == (nested.result_artifact_id, MAX_JOB_DEPTH + 1)
    assert await placed(database, beyond.result_artifact_id) == (None, 0)
    assert await placed(database, ignored) == (None, 0)
