"""Request parameter models built from a task function's signature and type hints."""

import inspect
import json
from collections.abc import Collection
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic.errors import PydanticSchemaGenerationError, PydanticUserError

from app.core.errors import ValidationFailedError
from app.core.inputs import json_value_problems


def build_params_model(
    task_name: str, signature: inspect.Signature, hints: dict[str, Any], injected: set[str]
) -> type[BaseModel]:
    """A strict pydantic model of the parameters a caller must or may send.

    Strict JSON validation: `"6"` is not an `int`, while ISO strings still become datetimes.
    Fields are aliased so parameter names such as `json` or `copy` cannot clash with BaseModel.
    """
    fields: dict[str, Any] = {}
    extra = "forbid"
    for index, param in enumerate(signature.parameters.values()):
        if param.name in injected:
            continue
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            extra = "allow"
            continue
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise ValueError(
                f"task {task_name!r}: positional-only parameter {param.name!r} cannot be "
                "passed by name"
            )
        annotation = hints.get(param.name, Any)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[f"p{index}"] = (annotation, Field(default, alias=param.name))
    config = ConfigDict(extra=extra, strict=True)  # type: ignore[typeddict-item]
    model_name = "".join(part.capitalize() for part in task_name.replace("-", "_").split("_"))
    try:
        model = create_model(f"{model_name}Params", __config__=config, **fields)
        model.model_json_schema()
    except (PydanticSchemaGenerationError, PydanticUserError) as exc:
        raise ValueError(
            f"task {task_name!r}: its parameters cannot be validated from JSON: {exc}"
        ) from exc
    return model


def validate_params(
    model: type[BaseModel], params: dict[str, Any], reserved: Collection[str] = ()
) -> dict[str, Any]:
    """Validate request params; return the call's keyword arguments, typed.

    `reserved` names (injected parameters) are never accepted from a request, even by a task
    with `**kwargs`. Raises `ValidationFailedError` listing every problem (missing, unknown,
    wrong type); values no backend can store (NaN, Infinity, NUL characters) are refused
    first, whatever the parameter's type.
    """
    errors = list(json_value_problems(params, ["params"]))
    if errors:
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)
        raise ValidationFailedError(f"Invalid task parameters: {detail}", errors=errors)
    errors = [
        {
            "loc": ["params", name],
            "msg": "Extra inputs are not permitted",
            "type": "extra_forbidden",
        }
        for name in params
        if name in reserved
    ]
    instance = None
    try:
        instance = model.model_validate_json(
            json.dumps({k: v for k, v in params.items() if k not in reserved})
        )
    except ValidationError as exc:
        errors += [
            {
                "loc": ["params", *(str(part) for part in err["loc"])],
                "msg": err["msg"],
                "type": err["type"],
            }
            for err in exc.errors(include_url=False, include_input=False)
        ]
    if errors or instance is None:
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)
        raise ValidationFailedError(f"Invalid task parameters: {detail}", errors=errors)
    kwargs = {
        field.alias or name: getattr(instance, name) for name, field in model.model_fields.items()
    }
    kwargs.update(instance.model_extra or {})
    return kwargs
