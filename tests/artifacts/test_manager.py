"""`ArtifactManager`: save and read artifacts, each save its own transaction."""

import re
from datetime import UTC

import pytest
from pydantic import ValidationError

from app.artifacts.manager import ArtifactManager
from app.artifacts.schemas import ArtifactIn, ArtifactRead
from app.core.clock import ULID_PATTERN
from app.db.database import Database
from app.jobs.scheduler import JobScheduler
from app.tasks.registry import TaskRegistry


@pytest.fixture
def manager(database: Database) -> ArtifactManager:
    return ArtifactManager(database)


@pytest.fixture
async def job_id(database: Database, registry: type[TaskRegistry]) -> str:
    @registry.register("noop")
    def noop() -> None:
        pass

    job = await JobScheduler(database, max_concurrency=1, registry=registry.default()).submit(
        "noop"
    )
    return job.id


async def _new_job(database: Database, registry: type[TaskRegistry]) -> str:
    job = await JobScheduler(database, max_concurrency=1, registry=registry.default()).submit(
        "noop"
    )
    return job.id


async def test_save_plain_json_value(manager: ArtifactManager) -> None:
    saved = await manager.save({"report": [1, 2, 3], "ok": True})

    assert isinstance(saved, ArtifactRead)
    assert re.match(ULID_PATTERN, saved.id)
    assert saved.job_id is None
    assert saved.data == {"report": [1, 2, 3], "ok": True}
    assert saved.created_at.tzinfo is not None
    assert saved.created_at.utcoffset() == UTC.utcoffset(None)


async def test_save_is_committed(manager: ArtifactManager, database: Database) -> None:
    saved = await manager.save({"durable": True})

    # A different manager (new sessions) sees it: the save was committed.
    other = ArtifactManager(database)
    fetched = await other.get(saved.id)

    assert fetched is not None
    assert fetched.data == {"durable": True}
    assert fetched.id == saved.id
    assert fetched.created_at == saved.created_at


async def test_save_with_job_id_keyword(manager: ArtifactManager, job_id: str) -> None:
    saved = await manager.save({"step": 1}, job_id=job_id)

    assert saved.job_id == job_id
    fetched = await manager.get(saved.id)
    assert fetched is not None
    assert fetched.job_id == job_id


async def test_save_artifact_in(manager: ArtifactManager, job_id: str) -> None:
    saved = await manager.save(ArtifactIn(data=["a", "b"], job_id=job_id))

    assert saved.data == ["a", "b"]
    assert saved.job_id == job_id


async def test_save_artifact_in_without_job_uses_keyword(
    manager: ArtifactManager, job_id: str
) -> None:
    saved = await manager.save(ArtifactIn(data="text"), job_id=job_id)

    assert saved.job_id == job_id
    assert saved.data == "text"


@pytest.mark.parametrize("data", [None, 0, "s", [], {}, {"nested": {"deep": [None, 1.25]}}])
async def test_save_round_trips_json_values(manager: ArtifactManager, data: object) -> None:
    saved = await manager.save(data)
    fetched = await manager.get(saved.id)

    assert fetched is not None
    assert fetched.data == data


async def test_save_rejects_values_that_are_not_json(manager: ArtifactManager) -> None:
    with pytest.raises(ValidationError):
        await manager.save({"when": object()})

    assert await manager.list_for_job("01ARZ3NDEKTSV4RRFFQ69G5FAV") == []


async def test_get_unknown_is_none(manager: ArtifactManager) -> None:
    assert await manager.get("01ARZ3NDEKTSV4RRFFQ69G5FAV") is None


async def test_list_for_job(
    manager: ArtifactManager, database: Database, registry: type[TaskRegistry], job_id: str
) -> None:
    other_job = await _new_job(database, registry)
    first = await manager.save({"n": 1}, job_id=job_id)
    second = await manager.save({"n": 2}, job_id=job_id)
    await manager.save({"n": 3}, job_id=other_job)
    await manager.save({"n": 4})

    listed = await manager.list_for_job(job_id)

    assert [a.id for a in listed] == [second.id, first.id]
    assert all(a.job_id == job_id for a in listed)
    assert [a.data for a in await manager.list_for_job(other_job)] == [{"n": 3}]
    assert [a.id for a in await manager.list_for_job(job_id, limit=1)] == [second.id]


async def test_list_for_job_without_artifacts(manager: ArtifactManager, job_id: str) -> None:
    assert await manager.list_for_job(job_id) == []
