"""All SQL of the workers table. Flushes, never commits."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, not_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.workers.models import WorkerRecord

# Workers found expired per heartbeat (the rest are found by the next one).
EXPIRED_BATCH = 100


def alive_condition(cutoff: datetime) -> ColumnElement[bool]:
    """Not stopped, and seen since `cutoff` (now minus the worker timeout)."""
    return WorkerRecord.stopped_at.is_(None) & (WorkerRecord.last_seen_at >= cutoff)


class WorkerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def register(self, record: WorkerRecord) -> None:
        """Insert the worker's row, or make an existing one (same id) alive again."""
        values = {c.name: getattr(record, c.key) for c in WorkerRecord.__table__.columns}
        dialect = self.session.get_bind().dialect.name
        insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
        changed = {k: v for k, v in values.items() if k not in {"id", "started_at"}}
        statement = insert(WorkerRecord).values(values)
        await self.session.execute(
            statement.on_conflict_do_update(index_elements=[WorkerRecord.id], set_=changed)
        )

    async def beat(self, worker_id: str, now: datetime, running: int) -> bool:
        """Refresh a worker's row; False when it has none."""
        result = await self.session.execute(
            update(WorkerRecord)
            .where(WorkerRecord.id == worker_id)
            .values(last_seen_at=now, running=running, stopped_at=None, stop_reason=None)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    async def mark_stopped(
        self, worker_ids: Sequence[str], now: datetime, reason: str, *, seen_before: datetime | None
    ) -> int:
        """Set `stopped_at` on these workers (only if still unseen since `seen_before`)."""
        if not worker_ids:
            return 0
        condition = WorkerRecord.id.in_(list(worker_ids)) & WorkerRecord.stopped_at.is_(None)
        if seen_before is not None:
            condition = condition & (WorkerRecord.last_seen_at < seen_before)
        result = await self.session.execute(
            update(WorkerRecord)
            .where(condition)
            .values(stopped_at=now, stop_reason=reason, running=0)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0))

    async def expired(self, cutoff: datetime, *, besides: str) -> list[str]:
        """Ids of workers not stopped and not seen since `cutoff` (other than `besides`)."""
        rows = await self.session.scalars(
            select(WorkerRecord.id)
            .where(
                WorkerRecord.stopped_at.is_(None),
                WorkerRecord.last_seen_at < cutoff,
                WorkerRecord.id != besides,
            )
            .order_by(WorkerRecord.last_seen_at)
            .limit(EXPIRED_BATCH)
        )
        return list(rows)

    async def prune(self, stopped_before: datetime) -> int:
        """Forget workers stopped before the given time (the table stays small)."""
        result = await self.session.execute(
            delete(WorkerRecord).where(WorkerRecord.stopped_at < stopped_before)
        )
        return int(getattr(result, "rowcount", 0))

    async def list_page(
        self, *, alive: bool | None, cutoff: datetime, limit: int, offset: int
    ) -> tuple[list[WorkerRecord], int]:
        """Workers, newest first; `alive` filters on `alive_condition(cutoff)`."""
        conditions = []
        if alive is not None:
            condition = alive_condition(cutoff)
            conditions.append(condition if alive else not_(condition))
        rows = await self.session.scalars(
            select(WorkerRecord)
            .where(*conditions)
            .order_by(WorkerRecord.started_at.desc(), WorkerRecord.id.desc())
            .limit(limit)
            .offset(offset)
        )
        total = await self.session.scalar(
            select(func.count()).select_from(WorkerRecord).where(*conditions)
        )
        return list(rows), total or 0

    async def count_alive(self, cutoff: datetime) -> int:
        total = await self.session.scalar(
            select(func.count()).select_from(WorkerRecord).where(alive_condition(cutoff))
        )
        return total or 0
