"""The job store: the one owner of every change of a job's state (see `JobStore`)."""

from app.jobs.store.attempts import AttemptEnd, Recorded
from app.jobs.store.effects import AfterCommit, Effects, LocalWorker
from app.jobs.store.job_store import JobStore

__all__ = ["AfterCommit", "AttemptEnd", "Effects", "JobStore", "LocalWorker", "Recorded"]
