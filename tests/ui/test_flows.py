"""A job's flow panel: parent, root and its first children in spawn order, on both backends."""

from datetime import timedelta

from sqlalchemy import select

from app.db.database import Database
from app.jobs.models import Job
from app.ui.flows import flow_view
from tests.ui.helpers import insert_jobs
from tests.ui.test_queries import NOW, flow_rows


async def view_of(database: Database, job_id: object, *, shown: int = 50, cap: int = 100):  # type: ignore[no-untyped-def]
    async with database.read_session() as session:
        job = (await session.scalars(select(Job).where(Job.id == job_id))).one()
        return await flow_view(session, job, shown=shown, cap=cap)


async def test_a_child_sees_its_parent_root_and_children(database: Database) -> None:
    rows = flow_rows()
    await insert_jobs(database, rows)
    root_id, first_id = rows[1]["id"], rows[2]["id"]

    child = await view_of(database, first_id)
    assert child.parent is not None
    assert child.root is not None
    assert (child.parent.id, child.parent.status) == (root_id, "running")
    assert child.root.id == root_id
    # Spawn order (map index), not id order.
    assert [(c.map_index, c.status) for c in child.children] == [(0, "completed"), (1, "pending")]
    assert child.child_count == 2
    assert child.in_flow
    assert not child.settled


async def test_a_root_sees_its_children_bounded_and_counted(database: Database) -> None:
    rows = flow_rows()
    await insert_jobs(database, rows)
    root_id = rows[1]["id"]

    root = await view_of(database, root_id, shown=2, cap=100)
    assert root.parent is None
    assert root.root is None
    assert [c.map_index for c in root.children] == [0, 1]
    assert root.child_count == 3
    capped = await view_of(database, root_id, shown=1, cap=1)
    assert capped.child_count == 2  # cap + 1: shown as "1+"

    alone = await view_of(database, rows[0]["id"])
    assert not alone.in_flow
    assert alone.children == []
    assert alone.child_count == 0


async def test_children_made_later_come_later(database: Database) -> None:
    rows = flow_rows()
    later = {
        **rows[3],
        "id": rows[3]["id"][:-1] + "Z",
        "map_index": 0,
        "child_key": "#1[0]",
        "created_at": NOW - timedelta(minutes=20),
    }
    await insert_jobs(database, [*rows, later])

    root = await view_of(database, rows[1]["id"])
    assert [c.id for c in root.children][-1] == later["id"]
