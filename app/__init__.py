"""taskexec: register Python functions as tasks and run them as durable REST jobs."""

from sqlalchemy.ext.asyncio import AsyncSession

from app.artifacts.hierarchy import ArtifactHierarchy
from app.artifacts.kinds import ArtifactInvalid, ArtifactTooLarge
from app.artifacts.manager import ArtifactManager
from app.artifacts.schemas import ArtifactIn, ArtifactRead
from app.core.settings import Settings
from app.db.database import Database
from app.jobs.context import JobCancelledError, JobContext
from app.jobs.flows import ChildJob, ChildJobFailed, FlowMismatchError
from app.jobs.scheduler import JobScheduler
from app.main import create_app
from app.schedules.definition import Schedule
from app.service.builder import ServiceBuilder
from app.service.schemas import ServiceInfo
from app.tasks.registry import TaskDefinition, TaskRegistry
from app.tasks.schemas import ParameterInfo, TaskInfo

__all__ = [
    "ArtifactHierarchy",
    "ArtifactIn",
    "ArtifactInvalid",
    "ArtifactManager",
    "ArtifactRead",
    "ArtifactTooLarge",
    "AsyncSession",
    "ChildJob",
    "ChildJobFailed",
    "Database",
    "FlowMismatchError",
    "JobCancelledError",
    "JobContext",
    "JobScheduler",
    "ParameterInfo",
    "Schedule",
    "ServiceBuilder",
    "ServiceInfo",
    "Settings",
    "TaskDefinition",
    "TaskInfo",
    "TaskRegistry",
    "create_app",
]
