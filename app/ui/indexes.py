"""Indexes the dashboard's queries walk, declared on the jobs table (migrations 0008, 0011).

- `(status, id)`, `ix_jobs_status_id` on the model itself (the API's job list walks it too): a
  status filter in id order (keyset pages), the oldest pending job, the newest failures,
  bounded counts per status.
- `(status, finished_at)`: completed and failed per minute over the last hour.
- `(task_name, status, id)`: a task filter with a status filter, and per-task figures.
- `(parent_id, id)` and `(schedule_id, id)`, partial (only jobs that have one): the jobs list
  filtered by parent or by schedule, in id order, one page at a time however many children or
  fires there are. Partial, so they cost nothing for the jobs outside flows and schedules.
  (`(root_id, id)` is the flows' own `ix_jobs_root_id`.)
"""

from sqlalchemy import Index

from app.jobs.models import Job

STATUS_FINISHED = Index("ix_jobs_status_finished_at", Job.status, Job.finished_at)
TASK_STATUS_ID = Index("ix_jobs_task_name_status_id", Job.task_name, Job.status, Job.id)
PARENT_ID = Index(
    "ix_jobs_parent_id_id",
    Job.parent_id,
    Job.id,
    sqlite_where=Job.parent_id.is_not(None),
    postgresql_where=Job.parent_id.is_not(None),
)
SCHEDULE_ID = Index(
    "ix_jobs_schedule_id_id",
    Job.schedule_id,
    Job.id,
    sqlite_where=Job.schedule_id.is_not(None),
    postgresql_where=Job.schedule_id.is_not(None),
)
