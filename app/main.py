"""The composition root: `create_app()` builds the service `taskexec serve` runs."""

import importlib
import logging
import os
import sys

from fastapi import FastAPI

from app.core.settings import Settings
from app.example_tasks import register_examples
from app.service.builder import ServiceBuilder
from app.service.schemas import ServiceInfo
from app.tasks.registry import TaskRegistry

logger = logging.getLogger(__name__)


class TaskModuleError(Exception):
    """A configured task module could not be imported; the message is one line."""


def load_tasks(settings: Settings) -> None:
    """Import the configured task modules (they register on import), or the examples."""
    for module in settings.task_modules:
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise TaskModuleError(
                f"cannot import task module {module!r} (TASKEXEC_TASK_MODULES): "
                f"{type(exc).__name__}: {exc}; searched {os.pathsep.join(sys.path)} "
                "(a module outside the working directory needs PYTHONPATH)"
            ) from exc
    if not settings.task_modules and settings.load_examples:
        register_examples(TaskRegistry)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The full service: health, tasks, jobs with an embedded worker, artifacts, docs, the
    dashboard."""
    settings = settings or Settings()
    load_tasks(settings)
    builder = (
        ServiceBuilder(
            info=ServiceInfo(
                display_name="taskexec",
                description="Run registered Python functions as durable REST jobs.",
            ),
            settings=settings,
        )
        .with_health()
        .with_tasks()
        .with_monitoring()
        .with_ui()
    )
    return builder.build()
