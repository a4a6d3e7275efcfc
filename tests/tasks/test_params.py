"""Request parameters are validated strictly against the task's signature."""

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel

from app.core.errors import AppError, ValidationFailedError
from app.jobs.context import JobContext
from app.tasks.registry import TaskDefinition, TaskRegistry


class Point(BaseModel):
    x: int
    y: int = 0


def _define(registry: type[TaskRegistry], fn: Any, name: str = "task") -> TaskDefinition:
    return registry.register_function(name, fn)


def _errors(definition: TaskDefinition, params: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(ValidationFailedError) as caught:
        definition.validate_params(params)
    assert caught.value.errors is not None
    return caught.value.errors


def multiply(a: int) -> int:
    return a * 7


# Strictness ---------------------------------------------------------------------------------


def test_string_digits_are_not_an_int(registry: type[TaskRegistry]) -> None:
    """The old bug: `{"a": "6"}` ran as `"6" * 7`."""
    definition = _define(registry, multiply)

    errors = _errors(definition, {"a": "6"})

    assert errors == [
        {"loc": ["params", "a"], "msg": "Input should be a valid integer", "type": "int_type"}
    ]


def test_real_int_is_accepted_and_typed(registry: type[TaskRegistry]) -> None:
    definition = _define(registry, multiply)

    kwargs = definition.validate_params({"a": 6})

    assert kwargs == {"a": 6}
    assert type(kwargs["a"]) is int
    assert multiply(**kwargs) == 42


@pytest.mark.parametrize(
    ("annotation", "value"),
    [
        (int, "6"),
        (int, 6.5),
        (int, True),
        (int, None),
        (str, 5),
        (str, ["a"]),
        (float, "1.5"),
        (bool, "true"),
        (bool, 1),
        (list[int], ["1", "2"]),
        (list[int], "12"),
        (dict[str, int], {"k": "v"}),
    ],
)
def test_wrong_types_are_rejected(
    registry: type[TaskRegistry], annotation: Any, value: Any
) -> None:
    def task(v: Any) -> None:
        pass

    task.__annotations__["v"] = annotation
    definition = _define(registry, task)

    errors = _errors(definition, {"v": value})

    assert errors
    assert all(error["loc"][:2] == ["params", "v"] for error in errors)


@pytest.mark.parametrize(
    ("annotation", "value"),
    [
        (int, 6),
        (float, 1.5),
        (float, 2),
        (str, "text"),
        (bool, False),
        (list[int], [1, 2]),
        (dict[str, int], {"k": 1}),
        (int | None, None),
        (Any, {"anything": [1, "two"]}),
    ],
)
def test_right_types_are_accepted(
    registry: type[TaskRegistry], annotation: Any, value: Any
) -> None:
    def task(v: Any) -> None:
        pass

    task.__annotations__["v"] = annotation
    definition = _define(registry, task)

    assert definition.validate_params({"v": value}) == {"v": value}


# One entry per problem ----------------------------------------------------------------------


def test_missing_param_is_one_entry(registry: type[TaskRegistry]) -> None:
    def task(a: int, b: str) -> None:
        pass

    errors = _errors(_define(registry, task), {"a": 1})

    assert errors == [{"loc": ["params", "b"], "msg": "Field required", "type": "missing"}]


def test_unknown_param_is_one_entry(registry: type[TaskRegistry]) -> None:
    def task(a: int) -> None:
        pass

    errors = _errors(_define(registry, task), {"a": 1, "surprise": True})

    assert errors == [
        {
            "loc": ["params", "surprise"],
            "msg": "Extra inputs are not permitted",
            "type": "extra_forbidden",
        }
    ]


def test_each_problem_has_its_own_entry(registry: type[TaskRegistry]) -> None:
    def task(a: int, b: str, c: float = 1.0) -> None:
        pass

    definition = _define(registry, task)

    with pytest.raises(ValidationFailedError) as caught:
        definition.validate_params({"a": "1", "c": 2.0, "x": 1, "y": 2})

    errors = caught.value.errors
    assert errors is not None
    by_loc = {tuple(error["loc"]): error["type"] for error in errors}
    assert by_loc == {
        ("params", "a"): "int_type",
        ("params", "b"): "missing",
        ("params", "x"): "extra_forbidden",
        ("params", "y"): "extra_forbidden",
    }
    assert len(errors) == 4
    # The detail names every problem, and the error renders as a 400.
    for name in ("params.a", "params.b", "params.x", "params.y"):
        assert name in caught.value.detail
    assert isinstance(caught.value, AppError)
    assert caught.value.status == 400
    assert caught.value.code == "validation_error"


def test_no_params_for_a_task_without_parameters(registry: type[TaskRegistry]) -> None:
    def task() -> str:
        return "ok"

    definition = _define(registry, task)

    assert definition.validate_params({}) == {}
    assert [e["type"] for e in _errors(definition, {"a": 1})] == ["extra_forbidden"]


# Defaults and extras ------------------------------------------------------------------------


def test_defaults_fill_omitted_params(registry: type[TaskRegistry]) -> None:
    def task(a: int, b: str = "bee", c: list[int] | None = None, d: float = 2.5) -> None:
        pass

    definition = _define(registry, task)

    assert definition.validate_params({"a": 1}) == {"a": 1, "b": "bee", "c": None, "d": 2.5}
    assert definition.validate_params({"a": 1, "b": "x", "c": [3]}) == {
        "a": 1,
        "b": "x",
        "c": [3],
        "d": 2.5,
    }


def test_var_keyword_allows_extra_params(registry: type[TaskRegistry]) -> None:
    def task(a: int, **kwargs: Any) -> None:
        pass

    definition = _define(registry, task)

    kwargs = definition.validate_params({"a": 1, "extra": "value", "nested": {"k": [1]}})

    assert kwargs == {"a": 1, "extra": "value", "nested": {"k": [1]}}
    # Declared params stay strict even when extras are allowed.
    assert [e["type"] for e in _errors(definition, {"a": "1", "extra": 1})] == ["int_type"]
    assert [e["type"] for e in _errors(definition, {"extra": 1})] == ["missing"]


def test_var_positional_is_ignored(registry: type[TaskRegistry]) -> None:
    def task(a: int, *args: int) -> None:
        pass

    definition = _define(registry, task)

    assert definition.validate_params({"a": 1}) == {"a": 1}
    assert [e["type"] for e in _errors(definition, {"a": 1, "args": [1]})] == ["extra_forbidden"]


def test_keyword_only_params(registry: type[TaskRegistry]) -> None:
    def task(*, a: int, b: int = 2) -> int:
        return a + b

    definition = _define(registry, task)

    assert definition.validate_params({"a": 1}) == {"a": 1, "b": 2}
    assert [e["type"] for e in _errors(definition, {})] == ["missing"]


# Names that clash with BaseModel ------------------------------------------------------------


def test_params_named_like_base_model_attributes(registry: type[TaskRegistry]) -> None:
    def task(
        json: str,
        copy: int,
        schema: bool,
        dict: list[int],
        model_fields: str = "mf",
        validate: float = 0.5,
    ) -> None:
        pass

    definition = _define(registry, task)

    kwargs = definition.validate_params(
        {"json": "j", "copy": 2, "schema": True, "dict": [1], "validate": 1.5}
    )

    assert kwargs == {
        "json": "j",
        "copy": 2,
        "schema": True,
        "dict": [1],
        "model_fields": "mf",
        "validate": 1.5,
    }
    schema = registry.get_info("task").parameters_schema
    assert set(schema["properties"]) == {
        "json",
        "copy",
        "schema",
        "dict",
        "model_fields",
        "validate",
    }
    errors = _errors(definition, {"json": 1, "copy": 2, "schema": True, "dict": [1]})
    assert errors[0]["loc"] == ["params", "json"]


# Rich types ---------------------------------------------------------------------------------


def test_model_param_becomes_a_model_instance(registry: type[TaskRegistry]) -> None:
    def task(point: Point, points: list[Point] | None = None) -> None:
        pass

    definition = _define(registry, task)

    kwargs = definition.validate_params({"point": {"x": 1, "y": 2}, "points": [{"x": 3}]})

    assert kwargs["point"] == Point(x=1, y=2)
    assert isinstance(kwargs["point"], Point)
    assert kwargs["points"] == [Point(x=3, y=0)]


def test_model_param_errors_point_into_the_model(registry: type[TaskRegistry]) -> None:
    def task(point: Point) -> None:
        pass

    errors = _errors(_define(registry, task), {"point": {"x": "abc"}})

    assert [(e["loc"], e["type"]) for e in errors] == [(["params", "point", "x"], "int_parsing")]
    assert [e["type"] for e in _errors(_define(registry, task, "t2"), {"point": 5})] == [
        "model_type"
    ]


def test_datetime_param_from_iso_string(registry: type[TaskRegistry]) -> None:
    def task(when: datetime) -> None:
        pass

    definition = _define(registry, task)

    kwargs = definition.validate_params({"when": "2024-05-06T07:08:09.123456+02:00"})

    when = kwargs["when"]
    assert isinstance(when, datetime)
    assert when == datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert definition.validate_params({"when": "2024-05-06T07:08:09Z"})["when"] == datetime(
        2024, 5, 6, 7, 8, 9, tzinfo=UTC
    )
    assert [e["type"] for e in _errors(definition, {"when": "not a date"})] == ["datetime_parsing"]
    assert _errors(definition, {"when": [2024]})


# Injected parameters can never come from the request ----------------------------------------


def test_same_named_request_param_cannot_override_injected(registry: type[TaskRegistry]) -> None:
    def task(ctx: JobContext, a: int) -> None:
        pass

    definition = _define(registry, task)

    errors = _errors(definition, {"a": 1, "ctx": "forged"})

    assert errors == [
        {
            "loc": ["params", "ctx"],
            "msg": "Extra inputs are not permitted",
            "type": "extra_forbidden",
        }
    ]
    assert definition.validate_params({"a": 1}) == {"a": 1}


def test_injected_param_is_not_required_from_the_request(registry: type[TaskRegistry]) -> None:
    def task(ctx: JobContext | None = None) -> None:
        pass

    assert _define(registry, task).validate_params({}) == {}


def test_var_keyword_task_rejects_a_param_named_like_an_injected_one(
    registry: type[TaskRegistry],
) -> None:
    def task(ctx: JobContext, **kwargs: Any) -> None:
        pass

    errors = _errors(_define(registry, task), {"ctx": "forged", "other": 1})

    assert [(e["loc"], e["type"]) for e in errors] == [(["params", "ctx"], "extra_forbidden")]
