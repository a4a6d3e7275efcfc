"""OpenAPI that says what the service does: 400 problem+json, never FastAPI's 422."""

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from app.core.errors import PROBLEM_JSON
from app.tasks.registry import TaskRegistry


class ProblemEntry(BaseModel):
    loc: list[str]
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None
    errors: list[ProblemEntry] | None = None


def install_problem_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Problem"] = Problem.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        components.update(components["Problem"].pop("$defs", {}))
        problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                responses = operation.get("responses", {})
                responses.pop("422", None)
                for status, response in responses.items():
                    if status[0] in "45":
                        response["content"] = problem
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        settings = getattr(app.state, "settings", None)
        if settings is not None:
            bound_wait_parameters(schema, settings.max_wait_seconds)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def bound_wait_parameters(schema: dict[str, Any], max_wait: float) -> None:
    """`?wait=` is capped by a setting (`TASKEXEC_MAX_WAIT_SECONDS`): give its maximum."""
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("name") != "wait":
                    continue
                options = parameter["schema"].get("anyOf", [parameter["schema"]])
                for option in options:
                    if option.get("type") == "number":
                        option["maximum"] = max_wait


# One typed `$execute` operation per registered task (Swagger UI then shows a form per task).
# The concrete paths are served by the generic `/api/v1/tasks/{name}/$execute` route.

GENERIC_EXECUTE_PATH = "/api/v1/tasks/{name}/$execute"
_PLACEHOLDERS: dict[str, Any] = {
    "string": "text",
    "integer": 0,
    "number": 0.0,
    "boolean": False,
    "array": [],
    "object": {},
}


def install_task_openapi(app: FastAPI, registry: type[TaskRegistry] = TaskRegistry) -> None:
    """Add `POST /api/v1/tasks/<task>/$execute` (operation `execute_<task>`) for each task,
    with the task's parameter schema as the body, its docstring and an example."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        add_task_operations(schema, registry)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def add_task_operations(schema: dict[str, Any], registry: type[TaskRegistry]) -> None:
    """Idempotently write the per-task operations into an OpenAPI document."""
    paths: dict[str, Any] = schema.get("paths", {})
    generic = paths.get(GENERIC_EXECUTE_PATH, {}).get("post")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    options = components.get("ExecuteRequest")
    if generic is None or options is None:
        return
    for name in registry.list_all():
        info = registry.get_info(name)
        params_ref = _task_params_component(components, name, info.parameters_schema)
        body = copy.deepcopy(options)
        body["title"] = f"Execute {name}"
        body["properties"]["params"] = {"$ref": params_ref}
        required = bool(info.parameters_schema.get("required"))
        if required:
            body["required"] = ["params"]
        example = {"params": _example(info.parameters_schema)}
        operation = copy.deepcopy(generic)
        operation.update(
            operationId=f"execute_{name}",
            summary=f"Run {name}",
            description=(info.docstring or f"Run the task {name!r}.")
            + "\n\nServed by `POST /api/v1/tasks/{name}/$execute`; tags: "
            + (", ".join(info.tags) or "none")
            + ".",
            tags=["Run a task"],
            parameters=[p for p in generic.get("parameters", []) if p.get("in") != "path"],
            requestBody={
                "required": required,
                "content": {"application/json": {"schema": body, "example": example}},
            },
        )
        paths[f"/api/v1/tasks/{name}/$execute"] = {"post": operation}


def _task_params_component(components: dict[str, Any], task: str, params: dict[str, Any]) -> str:
    """Store a task's params schema (and its `$defs`) as components; return its `$ref`."""
    prefix = f"TaskParams_{task}"
    defs = params.get("$defs", {})

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return {**node, "$ref": f"#/components/schemas/{prefix}_{ref[8:]}"}
            return {k: rewrite(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [rewrite(item) for item in node]
        return node

    for def_name, definition in defs.items():
        components[f"{prefix}_{def_name}"] = rewrite(definition)
    components[prefix] = rewrite(params)
    return f"#/components/schemas/{prefix}"


def _example(params: dict[str, Any]) -> dict[str, Any]:
    """Example params: each property's example, default, first enum value or a placeholder."""
    example: dict[str, Any] = {}
    for name, prop in params.get("properties", {}).items():
        example[name] = _example_value(prop, params.get("$defs", {}))
    return example


def _example_value(prop: dict[str, Any], defs: dict[str, Any]) -> Any:
    if prop.get("examples"):
        return prop["examples"][0]
    if "default" in prop:
        return prop["default"]
    ref = prop.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _example_value(defs.get(ref[8:], {}), defs)
    if prop.get("enum"):
        return prop["enum"][0]
    for option in prop.get("anyOf", []):
        if option.get("type") != "null":
            return _example_value(option, defs)
    if prop.get("type") == "object" and "properties" in prop:
        return {k: _example_value(v, defs) for k, v in prop["properties"].items()}
    return copy.deepcopy(_PLACEHOLDERS.get(str(prop.get("type"))))
