"""What the worker injects into tasks, by annotation: one typed value per injectable class."""

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.artifacts.manager import ArtifactManager
from app.db.database import Database
from app.jobs.context import JobContext
from app.jobs.scheduler import JobScheduler

# Opens a task's own session (the caller owns its transaction).
SessionFactory = Callable[[], AsyncSession]


@dataclass(frozen=True)
class Injectables:
    """The long-lived objects a task may ask for; `JobContext` and `AsyncSession` are made
    per run."""

    database: Database
    artifacts: ArtifactManager
    scheduler: JobScheduler

    def by_type(self, context: JobContext) -> dict[type[object], object]:
        """The value of each injectable class for one run (sessions are opened on demand)."""
        return {
            Database: self.database,
            ArtifactManager: self.artifacts,
            JobScheduler: self.scheduler,
            JobContext: context,
        }
