"""`ArtifactRepository`: all artifact SQL; it flushes and never commits."""

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from app.artifacts.models import Artifact
from app.artifacts.repository import ArtifactRepository
from app.core.clock import ULID_PATTERN
from app.db.database import Database
from app.jobs.models import Job
from app.jobs.scheduler import JobScheduler
from app.tasks.registry import TaskRegistry


async def _new_job(database: Database, registry: type[TaskRegistry]) -> str:
    if not registry.has("noop"):

        @registry.register("noop")
        def noop() -> None:
            pass

    job = await JobScheduler(database, max_concurrency=1, registry=registry.default()).submit(
        "noop"
    )
    return job.id


async def _add(database: Database, data: object, job_id: str | None = None) -> str:
    async with database.transaction() as session:
        artifact = await ArtifactRepository(session).add(data, job_id=job_id)
        return artifact.id


async def test_add_assigns_id_and_timestamp_and_flushes(database: Database) -> None:
    before = datetime.now(UTC)
    async with database.transaction() as session:
        artifact = await ArtifactRepository(session).add({"a": 1})
        # Flushed: visible to a query in the same transaction.
        found = await session.scalar(select(Artifact).where(Artifact.id == artifact.id))

    assert found is artifact
    assert re.match(ULID_PATTERN, artifact.id)
    assert artifact.job_id is None
    assert artifact.data == {"a": 1}
    assert artifact.created_at.tzinfo is not None
    assert before <= artifact.created_at <= datetime.now(UTC)


async def test_add_does_not_commit(database: Database) -> None:
    async with database.session() as session:
        artifact = await ArtifactRepository(session).add({"uncommitted": True})
        artifact_id = artifact.id
        await session.rollback()

    async with database.session() as session:
        assert await ArtifactRepository(session).get(artifact_id) is None


async def test_get_round_trips_json(database: Database) -> None:
    data = {
        "text": "héllo ✓",
        "number": 1.5,
        "int": 10**12,
        "none": None,
        "flag": False,
        "list": [1, "two", {"three": 3}],
    }
    artifact_id = await _add(database, data)

    async with database.session() as session:
        artifact = await ArtifactRepository(session).get(artifact_id)

    assert artifact is not None
    assert artifact.data == data
    assert artifact.created_at.tzinfo == UTC


@pytest.mark.parametrize("data", [[1, 2, 3], "plain text", 42, None, True])
async def test_any_json_value_can_be_stored(database: Database, data: object) -> None:
    artifact_id = await _add(database, data)

    async with database.session() as session:
        artifact = await ArtifactRepository(session).get(artifact_id)

    assert artifact is not None
    assert artifact.data == data


async def test_get_unknown_is_none(database: Database) -> None:
    async with database.session() as session:
        assert await ArtifactRepository(session).get("01ARZ3NDEKTSV4RRFFQ69G5FAV") is None


async def test_list_page_is_newest_first_with_total(database: Database) -> None:
    ids = [await _add(database, {"n": n}) for n in range(5)]

    async with database.session() as session:
        repo = ArtifactRepository(session)
        everything, total = await repo.list_page(job_id=None, limit=10, offset=0)
        first, first_total = await repo.list_page(job_id=None, limit=2, offset=0)
        middle, _ = await repo.list_page(job_id=None, limit=2, offset=2)
        last, _ = await repo.list_page(job_id=None, limit=2, offset=4)
        beyond, beyond_total = await repo.list_page(job_id=None, limit=2, offset=10)

    assert [a.id for a in everything] == list(reversed(ids))
    assert [a.data for a in everything] == [{"n": n} for n in (4, 3, 2, 1, 0)]
    assert total == first_total == beyond_total == 5
    assert [a.id for a in first + middle + last] == list(reversed(ids))
    assert len(last) == 1
    assert beyond == []


async def test_list_page_filters_by_job(database: Database, registry: type[TaskRegistry]) -> None:
    job_a = await _new_job(database, registry)
    job_b = await _new_job(database, registry)
    a_ids = [await _add(database, {"job": "a", "n": n}, job_a) for n in range(3)]
    await _add(database, {"job": "b"}, job_b)
    await _add(database, {"job": None})

    async with database.session() as session:
        repo = ArtifactRepository(session)
        of_a, total_a = await repo.list_page(job_id=job_a, limit=2, offset=0)
        of_b, total_b = await repo.list_page(job_id=job_b, limit=10, offset=0)
        none, total_none = await repo.list_page(
            job_id="01ARZ3NDEKTSV4RRFFQ69G5FAV", limit=10, offset=0
        )
        _, total_all = await repo.list_page(job_id=None, limit=1, offset=0)

    assert [a.id for a in of_a] == [a_ids[2], a_ids[1]]
    assert total_a == 3
    assert all(a.job_id == job_a for a in of_a)
    assert [a.data for a in of_b] == [{"job": "b"}]
    assert total_b == 1
    assert none == []
    assert total_none == 0
    assert total_all == 5


async def test_job_id_must_name_a_job(database: Database) -> None:
    with pytest.raises(IntegrityError):
        await _add(database, {"orphan": True}, job_id="01ARZ3NDEKTSV4RRFFQ69G5FAV")

    async with database.session() as session:
        _, total = await ArtifactRepository(session).list_page(job_id=None, limit=10, offset=0)
    assert total == 0


async def test_deleting_a_job_deletes_its_artifacts(
    database: Database, registry: type[TaskRegistry]
) -> None:
    job_id = await _new_job(database, registry)
    await _add(database, {"n": 1}, job_id)
    await _add(database, {"n": 2}, job_id)
    kept = await _add(database, {"unrelated": True})

    async with database.transaction() as session:
        await session.execute(delete(Job).where(Job.id == job_id))

    async with database.session() as session:
        rows, total = await ArtifactRepository(session).list_page(job_id=None, limit=10, offset=0)
    assert [row.id for row in rows] == [kept]
    assert total == 1
