"""Imports every ORM model so `Base.metadata` is complete (for Alembic and tests)."""

from app.artifacts.models import Artifact
from app.db.base import Base
from app.jobs.models import Job, JobAttempt, JobEvent, JobWait

__all__ = ["Artifact", "Base", "Job", "JobAttempt", "JobEvent", "JobWait"]
