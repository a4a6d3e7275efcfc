"""A run form made from a task's parameter schema, and the params read back from it.

Strings, numbers, integers and booleans get their own inputs, enums a select; anything else
(arrays, objects, unions) is a JSON textarea. The values read back go to the task's own
validation, so a bad value gets the same message the API gives.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SIMPLE = {"string", "integer", "number", "boolean"}


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    kind: str  # string, integer, number, boolean, enum, json
    required: bool
    nullable: bool
    value: str  # initial text of the input (the default, rendered)
    checked: bool = False
    options: list[str] = field(default_factory=list)
    enum_values: list[Any] = field(default_factory=list)
    description: str | None = None
    type_name: str = ""


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Follow a `$ref` and strip `null` from a two-way `anyOf`; returns (schema, nullable)."""
    nullable = False
    options = schema.get("anyOf")
    if isinstance(options, list):
        rest = [option for option in options if option.get("type") != "null"]
        nullable = len(rest) < len(options)
        if len(rest) == 1:
            schema = {**schema, **rest[0]}
            schema.pop("anyOf", None)
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        schema = {**defs.get(ref[8:], {}), **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema, nullable


def form_fields(params_schema: dict[str, Any]) -> list[FormField]:
    defs = params_schema.get("$defs", {})
    required = set(params_schema.get("required", []))
    fields = []
    for name, raw in params_schema.get("properties", {}).items():
        schema, nullable = _resolve(raw, defs)
        kind = "json"
        if isinstance(schema.get("enum"), list):
            kind = "enum"
        elif schema.get("type") in SIMPLE and "anyOf" not in schema:
            kind = str(schema["type"])
        default = schema.get("default")
        if kind == "json":
            value = json.dumps(default, indent=2) if default is not None else ""
        elif kind == "enum":
            value = "" if default is None else str(default)
        else:
            value = "" if default is None or kind == "boolean" else str(default)
        fields.append(
            FormField(
                name=name,
                label=str(schema.get("title") or name),
                kind=kind,
                required=name in required,
                nullable=nullable,
                value=value,
                checked=default is True,
                options=[str(v) for v in schema.get("enum", [])],
                enum_values=list(schema.get("enum", [])),
                description=schema.get("description"),
                type_name=_type_name(schema, nullable),
            )
        )
    return fields


def _type_name(schema: dict[str, Any], nullable: bool) -> str:
    if "enum" in schema:
        name = "one of " + ", ".join(json.dumps(v) for v in schema["enum"])
    elif "type" in schema:
        name = str(schema["type"])
        items = schema.get("items")
        if name == "array" and isinstance(items, dict) and "type" in items:
            name = f"array of {items['type']}"
    else:
        name = "JSON"
    return f"{name} or null" if nullable else name


def read_params(
    fields: list[FormField], form: Mapping[str, str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Params from submitted form values, and errors for values that are not even JSON.

    An empty optional field is left out (the task's default applies); an empty required one
    is left out too, so the task's validation reports it as missing.
    """
    params: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for spec in fields:
        text = form.get(spec.name)
        if spec.kind == "boolean":
            params[spec.name] = text is not None
            continue
        if text is None or (text.strip() == "" and spec.kind != "string"):
            continue
        if text == "" and not spec.required:
            continue
        if spec.kind == "integer":
            params[spec.name] = _number(text, int)
        elif spec.kind == "number":
            params[spec.name] = _number(text, float)
        elif spec.kind == "enum":
            params[spec.name] = next((v for v in spec.enum_values if str(v) == text), text)
        elif spec.kind == "json":
            try:
                params[spec.name] = json.loads(text)
            except json.JSONDecodeError as exc:
                errors.append({"loc": ["params", spec.name], "msg": f"not valid JSON: {exc.msg}"})
        else:
            params[spec.name] = text
    return params, errors


def _number(text: str, kind: type[int] | type[float]) -> Any:
    """The number typed, or the text itself (the task's validation then explains)."""
    try:
        return kind(text.strip())
    except ValueError:
        return text
