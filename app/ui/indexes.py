"""Indexes the dashboard's queries walk, declared on the jobs table (migration 0008).

- `(status, id)`, `ix_jobs_status_id` on the model itself (the API's job list walks it too): a
  status filter in id order (keyset pages), the oldest pending job, the newest failures,
  bounded counts per status.
- `(status, finished_at)`: completed and failed per minute over the last hour.
- `(task_name, status, id)`: a task filter with a status filter, and per-task figures.
"""

from sqlalchemy import Index

from app.jobs.models import Job

STATUS_FINISHED = Index("ix_jobs_status_finished_at", Job.status, Job.finished_at)
TASK_STATUS_ID = Index("ix_jobs_task_name_status_id", Job.task_name, Job.status, Job.id)
