"""`Client`, `AsyncClient` and the core they both run cannot drift apart, and the client is
released with the server's version."""

import ast
import inspect
import textwrap
import tomllib
import typing
from collections.abc import AsyncIterator, Callable, Iterator
from importlib.metadata import version
from typing import Any

import pytest

import taskexec_client
from taskexec_client import AsyncClient, Client, _io
from taskexec_client.core import Core
from tests.e2e.conftest import REPO_ROOT

OPERATIONS = [
    "tasks",
    "task",
    "submit",
    "submit_many",
    "run",
    "get",
    "jobs",
    "wait",
    "result",
    "cancel",
    "logs",
    "events",
    "artifact",
]


def public_methods(cls: type) -> set[str]:
    return {name for name, _ in inspect.getmembers(cls, inspect.isfunction) if name[0] != "_"}


def test_both_clients_offer_exactly_the_core_operations() -> None:
    operations = set(OPERATIONS)
    assert public_methods(Client) - {"close"} == operations
    assert public_methods(AsyncClient) - {"aclose"} == operations
    assert operations <= public_methods(Core)


@pytest.mark.parametrize("name", OPERATIONS)
def test_each_method_has_the_core_parameters(name: str) -> None:
    core = inspect.signature(getattr(Core, name)).parameters
    for cls in (Client, AsyncClient):
        params = inspect.signature(getattr(cls, name)).parameters
        assert list(params) == list(core), f"{cls.__name__}.{name}"
        for param, expected in zip(params.values(), core.values(), strict=True):
            assert (param.kind, param.default) == (expected.kind, expected.default), param
            assert param.annotation == expected.annotation, f"{cls.__name__}.{name}({param})"


@pytest.mark.parametrize("name", OPERATIONS)
def test_each_method_returns_what_its_flow_returns(name: str) -> None:
    flow = typing.get_type_hints(getattr(Core, name))["return"]
    value = typing.get_args(flow)[0]  # Flow[T] = Generator[Command, Outcome, T]
    sync = typing.get_type_hints(getattr(Client, name))["return"]
    asynchronous = typing.get_type_hints(getattr(AsyncClient, name))["return"]
    if name in ("events", "logs"):
        item = typing.get_args(value)[1]  # Stream[E] yields Command | E
        assert (typing.get_origin(sync), typing.get_args(sync)) == (Iterator, (item,))
        assert typing.get_origin(asynchronous) is AsyncIterator
        assert typing.get_args(asynchronous) == (item,)
        assert not inspect.iscoroutinefunction(getattr(AsyncClient, name))
    else:
        value = typing.get_args(flow)[2]
        assert sync == value
        assert asynchronous == value
        assert inspect.iscoroutinefunction(getattr(AsyncClient, name))


def test_the_client_has_the_server_version() -> None:
    with (REPO_ROOT / "pyproject.toml").open("rb") as file:
        server = tomllib.load(file)["project"]["version"]
    assert taskexec_client.__version__ == server
    assert version("taskexec-client") == server
    assert version("taskexec") == server


ASYNC_TO_SYNC = [
    ("async def ", "def "),
    ("await ", ""),
    ("AsyncDriver", "SyncDriver"),
    ("httpx.AsyncClient", "httpx.Client"),
    ("AsyncIterator", "Iterator"),
    (".aread()", ".read()"),
    (".aclose()", ".close()"),
    ("aiter_lines", "iter_lines"),
    ("anext(", "next("),
    ("asyncio.sleep", "time.sleep"),
]


def test_the_async_driver_is_the_sync_driver_with_awaits() -> None:
    source = inspect.getsource(_io.AsyncDriver)
    for old, new in ASYNC_TO_SYNC:
        source = source.replace(old, new)
    assert source == inspect.getsource(_io.SyncDriver)


def body(function: Callable[..., Any]) -> str:
    """A method's code without its docstring and comments."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    definition = tree.body[0]
    assert isinstance(definition, ast.FunctionDef | ast.AsyncFunctionDef)
    statements = definition.body
    if isinstance(statements[0], ast.Expr) and isinstance(statements[0].value, ast.Constant):
        statements = statements[1:]
    return "\n".join(ast.unparse(statement) for statement in statements)


@pytest.mark.parametrize("name", OPERATIONS)
def test_each_async_method_runs_the_same_flow_as_the_sync_one(name: str) -> None:
    sync = body(getattr(Client, name))
    asynchronous = body(getattr(AsyncClient, name)).replace("await ", "")
    assert asynchronous.replace("AsyncDriver", "SyncDriver") == sync
    assert f"self._core.{name}(" in sync
