"""The composition root: `create_app()` builds the service `taskexec serve` runs."""

import importlib
import logging
import os
import sys

from fastapi import FastAPI

from app.core.settings import Settings
from app.example_tasks import register_examples
from app.jobs.hooks import check_hooks
from app.service.builder import ServiceBuilder
from app.service.schemas import ServiceInfo
from app.tasks.registry import TaskRegistry

logger = logging.getLogger(__name__)


class TaskModuleError(Exception):
    """A configured task or hooks module could not be imported; the message is one line."""


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


def load_hooks(settings: Settings) -> object | None:
    """The hooks object `TASKEXEC_HOOKS` names ("module:attribute"), checked, or None."""
    if settings.hooks is None:
        return None
    module_name, _, attribute = settings.hooks.partition(":")
    try:
        found: object = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
        check_hooks(found)
    except Exception as exc:
        raise TaskModuleError(
            f"cannot load hooks {settings.hooks!r} (TASKEXEC_HOOKS): {type(exc).__name__}: {exc}"
        ) from exc
    return found


def create_app(settings: Settings | None = None) -> FastAPI:
    """The full service: health, tasks, jobs with an embedded worker, artifacts, docs, the
    dashboard."""
    settings = settings or Settings()
    load_tasks(settings)
    hooks = load_hooks(settings)
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
    if hooks is not None:
        builder = builder.with_hooks(hooks)
    return builder.build()
