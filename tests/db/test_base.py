"""Shared column types and the declarative base."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import String, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.dialects.sqlite.base import SQLiteDialect
from sqlalchemy.exc import StatementError

from app.db.base import NAMING_CONVENTION, Base, IdColumnType, JSONType, UTCDateTime
from app.db.database import Database
from app.jobs.models import Job
from tests.jobs.helpers import fetch_job, insert_job, make_job

PLUS_TWO = timezone(timedelta(hours=2))
POSTGRES = PGDialect()  # type: ignore[no-untyped-call]
SQLITE = SQLiteDialect()


async def test_aware_datetimes_come_back_as_utc_with_microseconds(database: Database) -> None:
    written = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=PLUS_TWO)

    job = await insert_job(database, created_at=written, run_at=written)

    stored = await fetch_job(database, job.id)
    assert stored.created_at == written
    assert stored.created_at.tzinfo is UTC
    assert stored.created_at.hour == 3
    assert stored.created_at.microsecond == 891011


async def test_naive_datetimes_are_rejected(database: Database) -> None:
    naive = datetime(2026, 3, 4, 5, 6, 7)  # noqa: DTZ001 - the point of the test

    with pytest.raises(StatementError, match="naive"):
        async with database.transaction() as session:
            session.add(make_job(created_at=naive))

    async with database.session() as session:
        assert list(await session.scalars(select(Job))) == []


async def test_comparisons_use_the_instant_not_the_written_offset(database: Database) -> None:
    # 10:00 UTC written as 12:00+02:00, and 11:00 UTC written as UTC.
    earlier = await insert_job(database, run_at=datetime(2026, 1, 1, 12, 0, tzinfo=PLUS_TWO))
    later = await insert_job(database, run_at=datetime(2026, 1, 1, 11, 0, tzinfo=UTC))
    cutoff = datetime(2026, 1, 1, 10, 30, tzinfo=UTC)

    async with database.session() as session:
        before = list(await session.scalars(select(Job.id).where(Job.run_at < cutoff)))
        ordered = list(await session.scalars(select(Job.id).order_by(Job.run_at)))

    assert before == [earlier.id]
    assert ordered == [earlier.id, later.id]


def test_bind_converts_to_utc_per_dialect() -> None:
    column_type = UTCDateTime()
    value = datetime(2026, 1, 1, 12, 0, 0, 5, tzinfo=PLUS_TWO)

    for_sqlite = column_type.process_bind_param(value, SQLITE)
    for_postgres = column_type.process_bind_param(value, POSTGRES)

    assert for_sqlite == datetime(2026, 1, 1, 10, 0, 0, 5)  # noqa: DTZ001 - stored naive
    assert for_sqlite is not None
    assert for_sqlite.tzinfo is None
    assert for_postgres == value
    assert for_postgres is not None
    assert for_postgres.tzinfo is UTC
    assert column_type.process_bind_param(None, SQLITE) is None


def test_bind_rejects_naive_datetimes() -> None:
    naive = datetime(2026, 1, 1)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="naive"):
        UTCDateTime().process_bind_param(naive, SQLITE)


def test_results_are_aware_utc() -> None:
    column_type = UTCDateTime()
    naive = datetime(2026, 1, 1, 10, 0, 0, 7)  # noqa: DTZ001 - as SQLite returns it

    from_sqlite = column_type.process_result_value(naive, SQLITE)
    from_postgres = column_type.process_result_value(
        datetime(2026, 1, 1, 12, 0, 0, 7, tzinfo=PLUS_TWO), POSTGRES
    )

    assert from_sqlite == datetime(2026, 1, 1, 10, 0, 0, 7, tzinfo=UTC)
    assert from_sqlite is not None
    assert from_sqlite.tzinfo is UTC
    assert from_postgres == from_sqlite
    assert from_postgres is not None
    assert from_postgres.tzinfo is UTC
    assert column_type.process_result_value(None, SQLITE) is None
    with pytest.raises(TypeError):
        column_type.process_result_value("2026-01-01", SQLITE)


def test_id_columns_hold_a_ulid() -> None:
    column_type = IdColumnType()
    assert isinstance(column_type, String)
    assert column_type.length == 26


def test_json_is_jsonb_on_postgresql() -> None:
    assert isinstance(JSONType.dialect_impl(POSTGRES), JSONB)
    assert not isinstance(JSONType.dialect_impl(SQLITE), JSONB)


async def test_json_columns_round_trip_nested_values(database: Database) -> None:
    params = {"text": "héllo ✓", "list": [1, 2.5, None, True], "nested": {"deep": {"x": []}}}

    job = await insert_job(database, params=params)

    assert (await fetch_job(database, job.id)).params == params


def test_constraint_names_follow_the_convention() -> None:
    assert Base.metadata.naming_convention == NAMING_CONVENTION
    jobs = Base.metadata.tables["jobs"]
    artifacts = Base.metadata.tables["artifacts"]
    assert jobs.primary_key.name == "pk_jobs"
    assert {fk.constraint.name for fk in artifacts.foreign_keys if fk.constraint} == {
        "fk_artifacts_job_id_jobs",
        "fk_artifacts_parent_id_artifacts",
    }
