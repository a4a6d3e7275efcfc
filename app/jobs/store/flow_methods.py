"""The job store's flow methods (mixed into `JobStore`): each one transaction that writes the
status, its events and NOTIFY together, and applies its effects after the commit."""

from collections.abc import Sequence

from app.db.database import Database
from app.jobs.flow_decisions import ChildState, StoredChild
from app.jobs.models import Job
from app.jobs.store import flows
from app.jobs.store.effects import AfterCommit


class FlowTransitions:
    """Queue children, wait for them, resume, read them back."""

    database: Database
    after_commit: AfterCommit

    async def create_children(
        self, worker_id: str, parent_id: str, children: Sequence[Job]
    ) -> list[StoredChild]:
        """Queue the parent's children that do not exist yet (one transaction, one NOTIFY);
        the stored row of each child, in order (an earlier run's child where it exists)."""
        async with self.database.transaction() as session:
            stored, effects = await flows.create_children(session, worker_id, parent_id, children)
        self.after_commit.apply(effects)
        return stored

    async def begin_wait(
        self,
        worker_id: str,
        parent_id: str,
        child_ids: Sequence[str],
        *,
        fail_fast: bool,
        park: bool,
    ) -> list[ChildState] | None:
        """`running` -> `waiting` for the unfinished children (None), or their states at once
        when nothing is left to wait for."""
        async with self.database.transaction() as session:
            states, effects = await flows.begin_wait_in(
                session, worker_id, parent_id, child_ids, fail_fast=fail_fast, park=park
            )
        self.after_commit.apply(effects)
        return states

    async def resume(self, worker_id: str, parent_id: str) -> bool:
        """A woken parent takes its slot again: `waiting` -> `running`. False if it is no
        longer a woken parent of this worker (canceled meanwhile)."""
        async with self.database.transaction() as session:
            resumed, effects = await flows.resume_in(session, worker_id, [parent_id])
        self.after_commit.apply(effects)
        return bool(resumed)

    async def wait_state(self, parent_id: str) -> str:
        """`woken`, `waiting`, or the status the parent left `waiting` for."""
        async with self.database.read_session() as session:
            return await flows.wait_state(session, parent_id)

    async def read_children(self, child_ids: Sequence[str]) -> list[ChildState]:
        """The children's states and stored results, in order."""
        async with self.database.read_session() as session:
            return await flows.read_children(session, child_ids)
