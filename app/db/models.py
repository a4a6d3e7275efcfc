"""Imports every ORM model so `Base.metadata` is complete (for Alembic and tests)."""

from app.artifacts.models import Artifact
from app.db.base import Base
from app.jobs.cache_models import CacheEntry
from app.jobs.callback_models import CallbackDelivery
from app.jobs.models import Job, JobAttempt, JobEvent, JobWait
from app.schedules.models import ScheduleRecord
from app.ui import indexes as ui_indexes  # noqa: F401  (the dashboard's indexes on jobs)
from app.workers.models import WorkerRecord

__all__ = [
    "Artifact",
    "Base",
    "CacheEntry",
    "CallbackDelivery",
    "Job",
    "JobAttempt",
    "JobEvent",
    "JobWait",
    "ScheduleRecord",
    "WorkerRecord",
]
