"""Which task parameters the service injects, decided by annotation only."""

import functools
import inspect
import types
import typing
from typing import Any


@functools.cache
def injectable_types() -> tuple[type[Any], ...]:
    """The classes the worker can inject.

    Imported on first use: the job and artifact modules that define them import the registry.
    """
    from sqlalchemy.ext.asyncio import AsyncSession

    from app.artifacts.manager import ArtifactManager
    from app.db.database import Database
    from app.jobs.context import JobContext
    from app.jobs.scheduler import JobScheduler

    return (AsyncSession, Database, ArtifactManager, JobScheduler, JobContext)


def injected_parameters(
    signature: inspect.Signature, hints: dict[str, Any]
) -> dict[str, type[Any]]:
    """Map each injected parameter name to the injectable class its annotation names."""
    found: dict[str, type[Any]] = {}
    for name in signature.parameters:
        annotation = _unwrap(hints.get(name))
        if not isinstance(annotation, type):
            continue
        for injectable in injectable_types():
            if issubclass(annotation, injectable):
                found[name] = injectable
                break
    return found


def _unwrap(annotation: Any) -> Any:
    """`X`, from `X`, `Annotated[X, ...]`, `X | None`, `Optional[X]` and their nestings."""
    while True:
        if typing.get_origin(annotation) is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        if typing.get_origin(annotation) in (typing.Union, types.UnionType):
            members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation
