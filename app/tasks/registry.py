"""The task registry: plain functions registered under URL-safe names."""

import inspect
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.tasks.injection import injected_parameters
from app.tasks.params import build_params_model, validate_params
from app.tasks.schemas import ParameterInfo, TaskInfo, TaskOptionsRead

TASK_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]+$")
TAG_RE = re.compile(r"^[^,\s]+$")
MAX_TASK_NAME = 200  # the jobs.task_name column

F = TypeVar("F", bound=Callable[..., Any])


class TaskOptions(BaseModel):
    """Per-task execution options, given as keyword arguments to `register`."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    retries: int = Field(default=0, ge=0, le=100)
    retry_backoff: float = Field(default=1.0, ge=0)
    retry_backoff_max: float = Field(default=300.0, ge=0)
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    timeout: float | None = Field(default=None, gt=0)
    max_concurrency: int | None = Field(default=None, ge=1)
    priority: int = 0
    description: str | None = None
    executor: Literal["thread", "process"] = "thread"
    # Times the job may be re-queued after its worker died; None: the service's setting.
    max_worker_losses: int | None = Field(default=None, ge=0, le=1000)

    @field_validator("retry_on", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return (value,) if isinstance(value, type) else value


@dataclass(frozen=True, eq=False)
class TaskDefinition:
    """Everything the service knows about one registered task."""

    name: str
    fn: Callable[..., Any]
    tags: tuple[str, ...]
    options: TaskOptions
    signature: inspect.Signature
    params_model: type[BaseModel]
    injected: dict[str, type[Any]]

    @property
    def is_async(self) -> bool:
        """Runs on the event loop (a coroutine or async generator function)."""
        return inspect.iscoroutinefunction(self.fn) or inspect.isasyncgenfunction(self.fn)

    @property
    def is_generator(self) -> bool:
        """Yields items: each is reported as progress, and the list of them is the result."""
        return inspect.isgeneratorfunction(self.fn) or inspect.isasyncgenfunction(self.fn)

    def validate_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Typed keyword arguments for the call, or `ValidationFailedError`."""
        return validate_params(self.params_model, params, reserved=self.injected.keys())

    def info(self) -> TaskInfo:
        return TaskInfo(
            name=self.name,
            docstring=inspect.getdoc(self.fn),
            signature=str(self.signature),
            parameters=[
                _parameter_info(p)
                for p in self.signature.parameters.values()
                if p.name not in self.injected and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            ],
            tags=list(self.tags),
            parameters_schema=self.params_model.model_json_schema(),
            injected=list(self.injected),
            is_async=self.is_async,
            options=TaskOptionsRead(
                **self.options.model_dump(exclude={"retry_on"}),
                retry_on=[exc.__name__ for exc in self.options.retry_on],
            ),
        )


def _parameter_info(param: inspect.Parameter) -> ParameterInfo:
    annotation = None
    if param.annotation is not inspect.Parameter.empty:
        annotation = inspect.formatannotation(param.annotation)
    required = param.default is inspect.Parameter.empty
    return ParameterInfo(
        name=param.name,
        annotation=annotation,
        default=None if required else repr(param.default),
        required=required,
    )


def build_definition(
    name: str, fn: Callable[..., Any], tags: list[str] | None, options: dict[str, Any]
) -> TaskDefinition:
    """Validate a registration and build its definition; `ValueError` when it is not valid."""
    if not isinstance(name, str) or not TASK_NAME_RE.fullmatch(name):
        raise ValueError(f"task name {name!r} must match {TASK_NAME_RE.pattern}")
    if len(name) > MAX_TASK_NAME:
        raise ValueError(f"task name {name!r} is longer than {MAX_TASK_NAME} characters")
    if not callable(fn):
        raise ValueError(f"task {name!r}: {fn!r} is not callable")
    tag_tuple = tuple(dict.fromkeys(tags or ()))
    for tag in tag_tuple:
        if not isinstance(tag, str) or not TAG_RE.fullmatch(tag):
            raise ValueError(f"task {name!r}: tag {tag!r} must be non-empty, no commas or spaces")
    try:
        task_options = TaskOptions(**options)
    except Exception as exc:
        raise ValueError(f"task {name!r}: invalid options: {exc}") from exc
    signature = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:
        raise ValueError(f"task {name!r}: cannot resolve type hints: {exc}") from exc
    hints.pop("return", None)
    injected = injected_parameters(signature, hints)
    if task_options.executor == "process":
        if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
            raise ValueError(f"task {name!r}: executor='process' is for sync functions")
        if inspect.isgeneratorfunction(fn):
            raise ValueError(f"task {name!r}: executor='process' does not run generators")
        if injected:
            raise ValueError(
                f"task {name!r}: a process task cannot take injected dependencies "
                f"({', '.join(injected)})"
            )
    model = build_params_model(name, signature, hints, set(injected))
    return TaskDefinition(name, fn, tag_tuple, task_options, signature, model, injected)


class Registry:
    """A set of registered tasks. The service's parts take one by instance; a process may hold
    several (a worker of a rolling deploy, a test)."""

    def __init__(self) -> None:
        self._tasks: dict[str, TaskDefinition] = {}

    def register(
        self, name: str, tags: list[str] | None = None, **options: Any
    ) -> Callable[[F], F]:
        """Decorator form of `register_function`; returns the function unchanged."""

        def decorator(fn: F) -> F:
            self.register_function(name, fn, tags=tags, **options)
            return fn

        return decorator

    def register_function(
        self, name: str, fn: Callable[..., Any], tags: list[str] | None = None, **options: Any
    ) -> TaskDefinition:
        """Register `fn` as task `name`. `ValueError` for a bad or duplicate name."""
        if name in self._tasks:
            raise ValueError(f"task {name!r} is already registered")
        definition = build_definition(name, fn, tags, options)
        self._tasks[name] = definition
        return definition

    def has(self, name: str) -> bool:
        return name in self._tasks

    def get(self, name: str) -> Callable[..., Any]:
        """The registered function. `KeyError` if unknown."""
        return self.get_definition(name).fn

    def get_definition(self, name: str) -> TaskDefinition:
        try:
            return self._tasks[name]
        except KeyError:
            raise KeyError(f"task {name!r} is not registered") from None

    def find(self, name: str) -> TaskDefinition | None:
        return self._tasks.get(name)

    def get_info(self, name: str) -> TaskInfo:
        return self.get_definition(name).info()

    def list_all(self) -> list[str]:
        """Names of every task, sorted."""
        return sorted(self._tasks)

    def list_by_tags(self, tags: list[str]) -> list[str]:
        """Names of the tasks that carry every one of `tags`, sorted."""
        wanted = set(tags)
        return sorted(name for name, d in self._tasks.items() if wanted.issubset(d.tags))

    def names(self) -> tuple[str, ...]:
        """Names of every task, in registration order (what a worker may claim)."""
        return tuple(self._tasks)

    def clear(self) -> None:
        self._tasks.clear()

    def snapshot(self) -> dict[str, TaskDefinition]:
        """A copy of the registry's contents (to restore with `restore`, e.g. in tests)."""
        return dict(self._tasks)

    def restore(self, tasks: dict[str, TaskDefinition]) -> None:
        self._tasks.clear()
        self._tasks.update(tasks)


class TaskRegistry:
    """The class-level registry API, a facade over the process's default `Registry`.

    `@TaskRegistry.register("greet_user", tags=["demo"])` registers a sync or async function
    under a URL-safe name; options (`retries`, `retry_backoff`, `timeout`, `max_concurrency`,
    `priority`, `description`, `max_worker_losses`) set how it runs. `TaskRegistry.default()`
    is the instance the service runs with unless it is given another.
    """

    _default: ClassVar[Registry] = Registry()

    @classmethod
    def default(cls) -> Registry:
        return cls._default

    @classmethod
    def register(cls, name: str, tags: list[str] | None = None, **options: Any) -> Callable[[F], F]:
        """Decorator form of `register_function`; returns the function unchanged."""
        return cls._default.register(name, tags, **options)

    @classmethod
    def register_function(
        cls, name: str, fn: Callable[..., Any], tags: list[str] | None = None, **options: Any
    ) -> TaskDefinition:
        """Register `fn` as task `name`. `ValueError` for a bad or duplicate name."""
        return cls._default.register_function(name, fn, tags, **options)

    @classmethod
    def has(cls, name: str) -> bool:
        return cls._default.has(name)

    @classmethod
    def get(cls, name: str) -> Callable[..., Any]:
        """The registered function. `KeyError` if unknown."""
        return cls._default.get(name)

    @classmethod
    def get_definition(cls, name: str) -> TaskDefinition:
        return cls._default.get_definition(name)

    @classmethod
    def find(cls, name: str) -> TaskDefinition | None:
        return cls._default.find(name)

    @classmethod
    def get_info(cls, name: str) -> TaskInfo:
        return cls._default.get_info(name)

    @classmethod
    def list_all(cls) -> list[str]:
        """Names of every task, sorted."""
        return cls._default.list_all()

    @classmethod
    def list_by_tags(cls, tags: list[str]) -> list[str]:
        """Names of the tasks that carry every one of `tags`, sorted."""
        return cls._default.list_by_tags(tags)

    @classmethod
    def clear(cls) -> None:
        cls._default.clear()

    @classmethod
    def snapshot(cls) -> dict[str, TaskDefinition]:
        """A copy of the default registry's contents (to restore with `restore`)."""
        return cls._default.snapshot()

    @classmethod
    def restore(cls, tasks: dict[str, TaskDefinition]) -> None:
        cls._default.restore(tasks)
