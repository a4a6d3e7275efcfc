"""Nesting a flow's artifacts the way its jobs nest, in the transaction that ends a job.

A job of a flow (one with a parent, or with children) has its result artifact at the level
of its depth in the flow (the root's at 0), under its parent's result artifact; the artifacts
it named without a parent go under its own result, one level down, with whatever hangs below
them. A parent's result does not exist while its children run, so whichever of a parent and
a child ends second makes their link: a parent's end takes the results its children already
have, a child's end finds its parent's. Levels come from the jobs' depths, never from the
order of the ends, so a link never moves a child's subtree.

Both ends hold the parent's job row before they link (the parent's end holds it from the
start, a child's end locks it in `after_ends`), so on PostgreSQL the one that ends second
sees the other's rows. Everything is written in the ending transaction: after a crash a job
has either ended with its links or not ended at all.
"""

from collections.abc import Sequence, Set
from dataclasses import dataclass

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.artifacts.hierarchy import UNLABELLED_MAX_DEPTH
from app.artifacts.models import RESULT_NAME
from app.jobs.store.flows import Ended, chunks
from app.jobs.store.rows import ARTIFACTS, JOBS

# The deepest job whose artifacts nest: its named artifacts are at most at the deepest level
# a hierarchy allows. Deeper jobs keep their artifacts as roots.
MAX_JOB_DEPTH = UNLABELLED_MAX_DEPTH - 2

_PLACE_RESULT = (
    update(ARTIFACTS)
    .where(ARTIFACTS.c.id == bindparam("b_id"))
    .values(parent_id=bindparam("b_parent"), level=bindparam("b_level"))
)
_ADOPT_CHILDREN = (
    update(ARTIFACTS)
    .where(
        ARTIFACTS.c.id.in_(
            select(JOBS.c.result_artifact_id).where(
                JOBS.c.parent_id == bindparam("b_job"), JOBS.c.result_artifact_id.is_not(None)
            )
        )
    )
    .values(parent_id=bindparam("b_parent"), level=bindparam("b_level"))
)


@dataclass(frozen=True)
class _Job:
    """A job as the links need it: its parent and its result artifact."""

    parent_id: str | None
    result_id: str | None


async def nest_ended(
    session: AsyncSession, ended: Sequence[Ended], with_children: Set[str]
) -> None:
    """Link the result artifacts of flow jobs that ended in this transaction into their
    flow's tree: under the parent's result, over the children's results and over the job's
    own unparented named artifacts. `with_children`: the ended jobs that have child jobs."""
    ends = [end for end in ended if end.artifact_id is not None]
    flow = [end for end in ends if end.parent_id is not None or end.job_id in with_children]
    if not flow:
        return
    jobs = await _read_ancestry(session, {end.parent_id for end in flow if end.parent_id})
    placed: list[dict[str, object]] = []
    adopting: list[dict[str, object]] = []
    depths: dict[str, tuple[int, str]] = {}
    for end in flow:
        assert end.artifact_id is not None  # noqa: S101 - filtered above
        place = _place(end, jobs)
        if place is None:
            continue
        depth, parent_result = place
        placed.append({"b_id": end.artifact_id, "b_parent": parent_result, "b_level": depth})
        if end.job_id in with_children and depth < MAX_JOB_DEPTH:
            adopting.append(
                {"b_job": end.job_id, "b_parent": end.artifact_id, "b_level": depth + 1}
            )
        depths[end.job_id] = (depth, end.artifact_id)
    if placed:
        await session.execute(_PLACE_RESULT, placed)
    if adopting:
        await session.execute(_ADOPT_CHILDREN, adopting)
    await _nest_named(session, depths)


async def _read_ancestry(session: AsyncSession, job_ids: set[str]) -> dict[str, _Job]:
    """`job_ids` and their ancestors, up to the flow's root or `MAX_JOB_DEPTH` levels."""
    jobs: dict[str, _Job] = {}
    asked: set[str] = set()
    wanted = set(job_ids)
    for _ in range(MAX_JOB_DEPTH + 1):
        wanted -= asked
        if not wanted:
            break
        asked |= wanted
        for chunk in chunks(sorted(wanted)):
            rows = await session.execute(
                select(JOBS.c.id, JOBS.c.parent_id, JOBS.c.result_artifact_id).where(
                    JOBS.c.id.in_(list(chunk))
                )
            )
            for job_id, parent_id, result_id in rows:
                jobs[job_id] = _Job(parent_id, result_id)
        wanted = {job.parent_id for job in jobs.values() if job.parent_id is not None}
    return jobs


def _place(end: Ended, jobs: dict[str, _Job]) -> tuple[int, str | None] | None:
    """The level of the job's result and the artifact it goes under; None when the job is
    too deep in its flow to nest (or an ancestor is gone)."""
    if end.parent_id is None:
        return 0, None
    parent_depth = _depth(jobs, end.parent_id)
    if parent_depth is None or parent_depth + 1 > MAX_JOB_DEPTH:
        return None
    return parent_depth + 1, jobs[end.parent_id].result_id


def _depth(jobs: dict[str, _Job], job_id: str) -> int | None:
    """The job's depth in its flow (0: the root); None past `MAX_JOB_DEPTH` or when an
    ancestor is gone."""
    depth, current = 0, jobs.get(job_id)
    while current is not None and current.parent_id is not None:
        depth += 1
        if depth > MAX_JOB_DEPTH:
            return None
        current = jobs.get(current.parent_id)
    return None if current is None else depth


async def _nest_named(session: AsyncSession, depths: dict[str, tuple[int, str]]) -> None:
    """Put each job's unparented named artifacts under its result, one level below it; what
    hangs below them moves down with them."""
    if not depths:
        return
    roots: list[tuple[str, str, int]] = []
    for chunk in chunks(sorted(depths)):
        rows = await session.execute(
            select(ARTIFACTS.c.id, ARTIFACTS.c.job_id, ARTIFACTS.c.level).where(
                ARTIFACTS.c.job_id.in_(list(chunk)),
                ARTIFACTS.c.parent_id.is_(None),
                ARTIFACTS.c.name != RESULT_NAME,
            )
        )
        roots += [(artifact_id, job_id, level) for artifact_id, job_id, level in rows]
    if not roots:
        return
    moves: dict[int, list[str]] = {}
    values = []
    for artifact_id, job_id, level in roots:
        depth, result_id = depths[job_id]
        values.append({"b_id": artifact_id, "b_parent": result_id, "b_level": depth + 1})
        moves.setdefault(depth + 1 - level, []).append(artifact_id)
    await session.execute(_PLACE_RESULT, values)
    for shift, moved in sorted(moves.items()):
        await _shift_below(session, moved, shift)


async def _shift_below(session: AsyncSession, artifact_ids: list[str], shift: int) -> None:
    """Add `shift` to the levels of every descendant of `artifact_ids`."""
    frontier = artifact_ids
    for _ in range(UNLABELLED_MAX_DEPTH):
        if not frontier or shift == 0:
            return
        found: list[str] = []
        for chunk in chunks(frontier):
            rows = await session.execute(
                update(ARTIFACTS)
                .where(ARTIFACTS.c.parent_id.in_(list(chunk)))
                .values(level=ARTIFACTS.c.level + shift)
                .returning(ARTIFACTS.c.id)
            )
            found += list(rows.scalars())
        frontier = found
