"""TaskRegistry: registration, look-up, tag filtering and the metadata it reports."""

import inspect
from typing import Annotated, Any, Optional

import pytest
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from app.artifacts.manager import ArtifactManager
from app.db.database import Database
from app.jobs.context import JobContext
from app.jobs.scheduler import JobScheduler
from app.tasks.registry import TaskDefinition, TaskRegistry
from app.tasks.schemas import ParameterInfo


def _noop() -> None:
    """Does nothing."""


# Registration -------------------------------------------------------------------------------


def test_decorator_registers_sync_function_and_returns_it_unchanged(
    registry: type[TaskRegistry],
) -> None:
    def add(a: int, b: int) -> int:
        return a + b

    decorated = registry.register("add", tags=["math"])(add)

    assert decorated is add
    assert registry.has("add")
    assert registry.get("add") is add
    definition = registry.get_definition("add")
    assert definition.is_async is False
    assert definition.tags == ("math",)


def test_decorator_registers_async_function(registry: type[TaskRegistry]) -> None:
    @registry.register("greet")
    async def greet(name: str = "World") -> str:
        return f"Hello, {name}!"

    assert registry.has("greet")
    assert registry.get("greet") is greet
    assert registry.get_definition("greet").is_async is True
    assert registry.get_info("greet").is_async is True


def test_register_function_sync_and_async(registry: type[TaskRegistry]) -> None:
    def sync_task(x: int) -> int:
        return x

    async def async_task(x: int) -> int:
        return x

    sync_def = registry.register_function("sync-task", sync_task, tags=["a"])
    async_def = registry.register_function("async_task", async_task)

    assert isinstance(sync_def, TaskDefinition)
    assert sync_def.fn is sync_task
    assert sync_def.is_async is False
    assert async_def.fn is async_task
    assert async_def.is_async is True
    assert registry.get("sync-task") is sync_task
    assert registry.get("async_task") is async_task


@pytest.mark.parametrize("name", ["a", "task_1", "Task-Name", "UPPER", "0", "a-b_c-9"])
def test_valid_names_are_accepted(registry: type[TaskRegistry], name: str) -> None:
    registry.register_function(name, _noop)
    assert registry.has(name)


@pytest.mark.parametrize(
    "name",
    ["", "has space", "slash/name", "dot.name", "dollar$", "tab\t", "ünicode", "a?b", "new\nline"],
)
def test_invalid_names_raise_value_error(registry: type[TaskRegistry], name: str) -> None:
    with pytest.raises(ValueError, match="must match"):
        registry.register_function(name, _noop)
    assert registry.list_all() == []


def test_name_with_trailing_newline_is_rejected(registry: type[TaskRegistry]) -> None:
    with pytest.raises(ValueError, match="must match"):
        registry.register_function("name\n", _noop)
    assert registry.list_all() == []


def test_invalid_name_in_decorator_raises_value_error(registry: type[TaskRegistry]) -> None:
    with pytest.raises(ValueError, match="must match"):

        @registry.register("not valid")
        def task() -> None:
            pass

    assert registry.list_all() == []


def test_duplicate_name_raises_and_keeps_the_first(registry: type[TaskRegistry]) -> None:
    def first() -> int:
        return 1

    def second() -> int:
        return 2

    registry.register_function("dup", first)
    with pytest.raises(ValueError, match="already registered"):
        registry.register_function("dup", second)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("dup")(second)

    assert registry.get("dup") is first
    assert registry.list_all() == ["dup"]


def test_non_callable_raises_value_error(registry: type[TaskRegistry]) -> None:
    with pytest.raises(ValueError, match="not callable"):
        registry.register_function("x", 42)  # type: ignore[arg-type]
    assert not registry.has("x")


@pytest.mark.parametrize("tags", [["has space"], ["a,b"], [""], ["ok", "bad tag"], [1]])
def test_bad_tags_raise_value_error(registry: type[TaskRegistry], tags: list[Any]) -> None:
    with pytest.raises(ValueError, match="tag"):
        registry.register_function("tagged", _noop, tags=tags)
    assert not registry.has("tagged")


def test_tag_with_trailing_newline_is_rejected(registry: type[TaskRegistry]) -> None:
    with pytest.raises(ValueError, match="tag"):
        registry.register_function("tagged", _noop, tags=["x\n"])
    assert not registry.has("tagged")


def test_duplicate_tags_are_collapsed_in_order(registry: type[TaskRegistry]) -> None:
    registry.register_function("t", _noop, tags=["b", "a", "b"])
    assert registry.get_info("t").tags == ["b", "a"]


@pytest.mark.parametrize(
    "options",
    [
        {"retries": -1},
        {"retries": 1000},
        {"timeout": 0},
        {"timeout": -5},
        {"max_concurrency": 0},
        {"retry_backoff": -1},
        {"priority": "high"},
        {"no_such_option": True},
    ],
)
def test_bad_options_raise_value_error(
    registry: type[TaskRegistry], options: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match="invalid options"):
        registry.register_function("opt", _noop, **options)
    assert not registry.has("opt")


def test_positional_only_parameter_is_rejected(registry: type[TaskRegistry]) -> None:
    def positional(a: int, /) -> int:
        return a

    with pytest.raises(ValueError, match="positional-only"):
        registry.register_function("positional", positional)
    assert not registry.has("positional")


def test_parameter_type_that_cannot_come_from_json_is_rejected(
    registry: type[TaskRegistry],
) -> None:
    class Opaque:
        pass

    def needs_opaque(thing: Opaque) -> None:
        pass

    with pytest.raises(ValueError, match="cannot be validated"):
        registry.register_function("opaque", needs_opaque)
    assert not registry.has("opaque")


# Look-up ------------------------------------------------------------------------------------


def test_has_and_get_for_unknown_names(registry: type[TaskRegistry]) -> None:
    assert registry.has("missing") is False
    assert registry.find("missing") is None
    with pytest.raises(KeyError):
        registry.get("missing")
    with pytest.raises(KeyError):
        registry.get_info("missing")


def test_list_all_is_sorted(registry: type[TaskRegistry]) -> None:
    for name in ["zeta", "Alpha", "beta", "alpha", "_under", "9nine"]:
        registry.register_function(name, _noop)

    assert registry.list_all() == sorted(["zeta", "Alpha", "beta", "alpha", "_under", "9nine"])
    assert registry.list_all() == ["9nine", "Alpha", "_under", "alpha", "beta", "zeta"]


def test_list_all_empty(registry: type[TaskRegistry]) -> None:
    assert registry.list_all() == []


def test_list_by_tags_uses_and_semantics(registry: type[TaskRegistry]) -> None:
    registry.register_function("only-a", _noop, tags=["a"])
    registry.register_function("only-b", _noop, tags=["b"])
    registry.register_function("both-2", _noop, tags=["b", "a"])
    registry.register_function("both-1", _noop, tags=["a", "b", "c"])
    registry.register_function("untagged", _noop)

    assert registry.list_by_tags(["a"]) == ["both-1", "both-2", "only-a"]
    assert registry.list_by_tags(["b"]) == ["both-1", "both-2", "only-b"]
    assert registry.list_by_tags(["a", "b"]) == ["both-1", "both-2"]
    assert registry.list_by_tags(["b", "a"]) == ["both-1", "both-2"]
    assert registry.list_by_tags(["a", "b", "c"]) == ["both-1"]
    assert registry.list_by_tags(["c", "missing"]) == []
    assert registry.list_by_tags(["nope"]) == []


def test_clear_removes_everything(registry: type[TaskRegistry]) -> None:
    registry.register_function("one", _noop, tags=["x"])
    registry.register_function("two", _noop, tags=["x"])

    registry.clear()

    assert registry.list_all() == []
    assert registry.list_by_tags(["x"]) == []
    assert not registry.has("one")
    # A cleared name can be registered again.
    registry.register_function("one", _noop)
    assert registry.list_all() == ["one"]


def test_snapshot_and_restore(registry: type[TaskRegistry]) -> None:
    registry.register_function("kept", _noop)
    saved = registry.snapshot()
    registry.register_function("extra", _noop)

    registry.restore(saved)

    assert registry.list_all() == ["kept"]


# Metadata -----------------------------------------------------------------------------------


def test_task_info_fields(registry: type[TaskRegistry]) -> None:
    @registry.register("describe", tags=["demo", "math"])
    def describe(count: int, label: str = "items", ratio: float | None = None) -> str:
        """Describe a count.

        Longer explanation.
        """
        return f"{count} {label} {ratio}"

    info = registry.get_info("describe")

    assert info.name == "describe"
    assert info.docstring == "Describe a count.\n\nLonger explanation."
    assert info.signature == str(inspect.signature(describe))
    assert info.signature == (
        "(count: int, label: str = 'items', ratio: float | None = None) -> str"
    )
    assert info.tags == ["demo", "math"]
    assert info.is_async is False
    assert info.injected == []
    assert info.parameters == [
        ParameterInfo(name="count", annotation="int", default=None, required=True),
        ParameterInfo(name="label", annotation="str", default="'items'", required=False),
        ParameterInfo(name="ratio", annotation="float | None", default="None", required=False),
    ]


def test_task_info_without_docstring_or_annotations(registry: type[TaskRegistry]) -> None:
    def bare(x, y=3):  # type: ignore[no-untyped-def]
        return x

    registry.register_function("bare", bare)
    info = registry.get_info("bare")

    assert info.docstring is None
    assert info.parameters == [
        ParameterInfo(name="x", annotation=None, default=None, required=True),
        ParameterInfo(name="y", annotation=None, default="3", required=False),
    ]
    assert info.parameters_schema["required"] == ["x"]


def test_parameters_schema_describes_request_params(registry: type[TaskRegistry]) -> None:
    @registry.register("schema-task")
    def schema_task(count: int, label: str = "items", flags: list[bool] | None = None) -> None:
        pass

    schema = registry.get_info("schema-task").parameters_schema

    assert schema["type"] == "object"
    assert set(schema["properties"]) == {"count", "label", "flags"}
    assert schema["properties"]["count"]["type"] == "integer"
    assert schema["properties"]["label"]["type"] == "string"
    assert schema["properties"]["label"]["default"] == "items"
    assert schema["required"] == ["count"]
    assert schema["additionalProperties"] is False


def test_parameters_schema_allows_extra_with_var_keyword(registry: type[TaskRegistry]) -> None:
    def flexible(a: int, *args: int, **kwargs: Any) -> None:
        pass

    registry.register_function("flexible", flexible)
    info = registry.get_info("flexible")

    assert [p.name for p in info.parameters] == ["a"]
    assert set(info.parameters_schema["properties"]) == {"a"}
    assert info.parameters_schema.get("additionalProperties") is not False


def test_default_options(registry: type[TaskRegistry]) -> None:
    registry.register_function("plain", _noop)
    options = registry.get_info("plain").options

    assert options.retries == 0
    assert options.retry_backoff == 1.0
    assert options.timeout is None
    assert options.max_concurrency is None
    assert options.priority == 0
    assert options.description is None
    assert options.retry_on == ["Exception"]


def test_options_are_reported(registry: type[TaskRegistry]) -> None:
    @registry.register(
        "configured",
        tags=["x"],
        retries=3,
        retry_backoff=0.5,
        timeout=12.5,
        max_concurrency=2,
        priority=7,
        description="A configured task.",
        retry_on=ConnectionError,
    )
    async def configured() -> None:
        pass

    options = registry.get_info("configured").options
    definition = registry.get_definition("configured")

    assert options.retries == 3
    assert options.retry_backoff == 0.5
    assert options.timeout == 12.5
    assert options.max_concurrency == 2
    assert options.priority == 7
    assert options.description == "A configured task."
    assert options.retry_on == ["ConnectionError"]
    assert definition.options.retry_on == (ConnectionError,)


# Injected parameters ------------------------------------------------------------------------


def test_injected_parameters_are_not_request_parameters(registry: type[TaskRegistry]) -> None:
    @registry.register("injected")
    async def injected(
        value: int,
        session: AsyncSession,
        database: Database,
        artifacts: ArtifactManager,
        scheduler: JobScheduler,
        ctx: JobContext,
        label: str = "x",
    ) -> None:
        pass

    info = registry.get_info("injected")
    definition = registry.get_definition("injected")

    assert [p.name for p in info.parameters] == ["value", "label"]
    assert set(info.parameters_schema["properties"]) == {"value", "label"}
    assert info.parameters_schema["required"] == ["value"]
    assert info.injected == ["session", "database", "artifacts", "scheduler", "ctx"]
    assert definition.injected == {
        "session": AsyncSession,
        "database": Database,
        "artifacts": ArtifactManager,
        "scheduler": JobScheduler,
        "ctx": JobContext,
    }


def test_optional_and_annotated_injected_forms(registry: type[TaskRegistry]) -> None:
    @registry.register("optional-injected")
    def optional_injected(
        a: str,
        ctx: JobContext | None = None,
        db: Optional[Database] = None,  # noqa: UP045 - the Optional form is what is tested
        scheduler: None | JobScheduler = None,  # noqa: RUF036 - None first is a form users write
        session: Annotated[AsyncSession, "meta"] = None,  # type: ignore[assignment]
        artifacts: Annotated[ArtifactManager | None, "meta"] = None,
    ) -> None:
        pass

    info = registry.get_info("optional-injected")

    assert info.injected == ["ctx", "db", "scheduler", "session", "artifacts"]
    assert [p.name for p in info.parameters] == ["a"]
    assert set(info.parameters_schema["properties"]) == {"a"}


def test_optional_annotated_injected_form(registry: type[TaskRegistry]) -> None:
    def optional_annotated(session: Annotated[AsyncSession, "meta"] | None = None) -> None:
        pass

    registry.register_function("optional-annotated", optional_annotated)

    assert registry.get_info("optional-annotated").injected == ["session"]
    assert registry.get_info("optional-annotated").parameters == []


def test_subclass_of_injectable_type_is_injected(registry: type[TaskRegistry]) -> None:
    class MyDatabase(Database):
        pass

    def uses_subclass(db: MyDatabase) -> None:
        pass

    registry.register_function("subclass", uses_subclass)

    assert registry.get_definition("subclass").injected == {"db": Database}
    assert registry.get_info("subclass").parameters == []


def test_injection_is_by_annotation_not_by_name(registry: type[TaskRegistry]) -> None:
    def named_like_injectables(session: int, ctx: str, database: bool = False) -> None:
        pass

    registry.register_function("by-name", named_like_injectables)
    info = registry.get_info("by-name")

    assert info.injected == []
    assert [p.name for p in info.parameters] == ["session", "ctx", "database"]
    assert set(info.parameters_schema["properties"]) == {"session", "ctx", "database"}


def test_union_of_injectable_and_other_type_is_not_injected(
    registry: type[TaskRegistry],
) -> None:
    def ambiguous(value: int | str) -> None:
        pass

    registry.register_function("ambiguous", ambiguous)
    assert registry.get_info("ambiguous").injected == []


def test_model_parameter_schema_is_included(registry: type[TaskRegistry]) -> None:
    class Point(BaseModel):
        x: int
        y: int

    def move(point: Point, ctx: JobContext) -> None:
        pass

    registry.register_function("move", move)
    info = registry.get_info("move")

    assert [p.name for p in info.parameters] == ["point"]
    assert info.injected == ["ctx"]
    schema = info.parameters_schema
    assert set(schema["properties"]) == {"point"}
    assert "Point" in schema["$defs"]
    assert set(schema["$defs"]["Point"]["properties"]) == {"x", "y"}
