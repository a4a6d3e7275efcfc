"""The run form made from a parameter schema, and params read back from it."""

from enum import Enum
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from app.tasks.registry import TaskRegistry
from app.ui.forms import FormField, form_fields, read_params


class Size(Enum):
    SMALL = 1
    LARGE = 2


class Point(BaseModel):
    x: int
    y: int


def fields_of(registry: type[TaskRegistry]) -> dict[str, FormField]:
    @registry.register("everything")
    def everything(
        name: str,
        count: int,
        size: Size,
        ratio: float = 0.5,
        flag: bool = True,
        mode: Literal["a", "b"] = "b",
        tags: list[str] | None = None,
        point: Point | None = None,
        note: str | None = None,
        anything: Any = None,
    ) -> None:
        """All kinds."""

    schema = registry.get_info("everything").parameters_schema
    return {spec.name: spec for spec in form_fields(schema)}


def test_each_parameter_gets_the_input_of_its_type(registry: type[TaskRegistry]) -> None:
    fields = fields_of(registry)

    kinds = {name: spec.kind for name, spec in fields.items()}
    assert kinds == {
        "name": "string",
        "count": "integer",
        "size": "enum",
        "ratio": "number",
        "flag": "boolean",
        "mode": "enum",
        "tags": "json",
        "point": "json",
        "note": "string",
        "anything": "json",
    }
    assert fields["name"].required
    assert fields["count"].required
    assert fields["size"].required
    assert not fields["ratio"].required
    assert fields["ratio"].value == "0.5"
    assert fields["flag"].checked is True
    assert fields["mode"].options == ["a", "b"]
    assert fields["mode"].value == "b"
    assert fields["size"].options == ["1", "2"]
    assert fields["note"].nullable
    assert fields["tags"].type_name == "array of string or null"
    assert fields["point"].value == ""


def test_values_come_back_typed(registry: type[TaskRegistry]) -> None:
    fields = list(fields_of(registry).values())
    form = {
        "name": "ada",
        "count": "3",
        "size": "2",
        "ratio": "0.25",
        "mode": "a",
        "tags": '["x", "y"]',
        "point": '{"x": 1, "y": 2}',
        "note": "",
        "anything": "",
    }

    params, errors = read_params(fields, form)

    assert errors == []
    assert params == {
        "name": "ada",
        "count": 3,
        "size": 2,
        "ratio": 0.25,
        "flag": False,  # an unchecked box
        "mode": "a",
        "tags": ["x", "y"],
        "point": {"x": 1, "y": 2},
    }
    definition = registry.get_definition("everything")
    assert definition.validate_params(params)["size"] is Size.LARGE


@pytest.mark.parametrize(
    ("field", "text", "expected"),
    [("count", "three", "three"), ("ratio", "1e400x", "1e400x"), ("count", " 7 ", 7)],
)
def test_a_number_that_is_not_one_goes_to_validation_as_typed(
    registry: type[TaskRegistry], field: str, text: str, expected: object
) -> None:
    fields = list(fields_of(registry).values())
    params, errors = read_params(fields, {"name": "a", "size": "1", field: text})

    assert errors == []
    assert params[field] == expected


def test_bad_json_is_an_error_naming_the_field(registry: type[TaskRegistry]) -> None:
    fields = list(fields_of(registry).values())
    params, errors = read_params(fields, {"name": "a", "count": "1", "tags": "[1,"})

    assert "tags" not in params
    assert len(errors) == 1
    assert errors[0]["loc"] == ["params", "tags"]
    assert errors[0]["msg"].startswith("not valid JSON")


def test_empty_required_fields_are_left_for_validation_to_report(
    registry: type[TaskRegistry],
) -> None:
    fields = list(fields_of(registry).values())
    params, errors = read_params(fields, {"name": "", "count": ""})

    assert errors == []
    assert params == {"name": "", "flag": False}
