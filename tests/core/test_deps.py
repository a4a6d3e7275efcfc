"""Request dependencies never hop to a thread: FastAPI runs a sync `def` dependency in the
threadpool, a thread hand-off per request that showed as ~40% of `$execute`'s CPU in a profile."""

import inspect
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant

from app.main import create_app
from tests.conftest import make_settings


def _routes(app: FastAPI) -> Iterator[tuple[str, Callable[..., Any], Dependant]]:
    """(path, endpoint, dependant) of every API route, included routers' routes too."""
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        found: list[Any] = list(contexts()) if contexts is not None else [route]
        for context in found:
            dependant = getattr(context, "dependant", None)
            if dependant is not None:
                yield context.path, context.endpoint, dependant


def _is_async(call: Callable[..., Any]) -> bool:
    """As FastAPI decides it: a function by itself, any other callable by its `__call__`."""
    if inspect.isclass(call):
        return False
    target: object = call if inspect.isroutine(call) else getattr(call, "__call__", None)  # noqa: B004
    return inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target)


def _sync_dependencies(dependant: Dependant) -> Iterator[str]:
    for sub in dependant.dependencies:
        if sub.call is not None and not _is_async(sub.call):
            yield getattr(sub.call, "__qualname__", repr(sub.call))
        yield from _sync_dependencies(sub)


def test_every_route_dependency_is_async(sqlite_database_url: str) -> None:
    app = create_app(make_settings(sqlite_database_url, api_keys=["k"]))
    routes = list(_routes(app))
    assert len(routes) > 10
    assert any(dependant.dependencies for _, _, dependant in routes)
    sync = [f"{path}: {name}" for path, _, dep in routes for name in _sync_dependencies(dep)]
    assert sync == []


def test_every_route_handler_is_async(sqlite_database_url: str) -> None:
    app = create_app(make_settings(sqlite_database_url))
    sync = [path for path, endpoint, _ in _routes(app) if not _is_async(endpoint)]
    assert sync == []
