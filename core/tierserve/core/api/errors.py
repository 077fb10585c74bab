"""Turn pydantic validation errors into the messages the API server gives.

``tierserve render`` must fail with the message ``kubectl apply`` would show, so that
a model owner sees one wording whether or not a cluster is involved. The shared table
``tests/data/bad_manifests.yaml`` holds each case's expected text and is checked against
both this formatter (unit tests) and the real API server (e2e tests).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from tierserve.core.api.base import RuleViolation


def _path(prefix: str, loc: Sequence[int | str]) -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not part.startswith(("function-", "literal[", "int", "str", "float", "bool")):
            out += f".{part}"
    return out


def _value(v: Any) -> str:
    if isinstance(v, dict | list):
        return '"object"' if isinstance(v, dict) else '"array"'
    return json.dumps(v)


def _supported(err: ErrorDetails) -> str:
    expected = str((err.get("ctx") or {}).get("expected", ""))
    return expected.replace("'", '"').replace(" or ", ", ")


_TYPE_NAMES = {"int_type": "integer", "int_parsing": "integer", "int_from_float": "integer",
               "float_type": "number", "float_parsing": "number", "string_type": "string",
               "bool_type": "boolean", "bool_parsing": "boolean", "list_type": "array",
               "dict_type": "object", "model_type": "object", "model_attributes_type": "object"}
_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean",
               list: "array", dict: "object", type(None): "null"}
_BOUNDS = {"greater_than_equal": "greater than or equal to {ge}",
           "greater_than": "greater than {gt}",
           "less_than_equal": "less than or equal to {le}",
           "less_than": "less than {lt}"}


def _one(prefix: str, err: ErrorDetails) -> str:
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    path = _path(prefix, err["loc"])
    if kind == "missing":
        return f"{path}: Required value"
    if kind == "extra_forbidden":
        return f'strict decoding error: unknown field "{path}"'
    if kind in ("literal_error", "enum"):
        return f"{path}: Unsupported value: {_value(value)}: supported values: {_supported(err)}"
    if kind in _TYPE_NAMES:
        got = _value(_JSON_TYPES.get(type(value), "object"))
        return (f"{path}: Invalid value: {got}: {path} in body must be "
                f"of type {_TYPE_NAMES[kind]}: {got}")
    if kind in _BOUNDS:
        bound = _BOUNDS[kind].format(**ctx)
        return f"{path}: Invalid value: {_value(value)}: {path} in body should be {bound}"
    if kind == "string_pattern_mismatch":
        return (f"{path}: Invalid value: {_value(value)}: {path} in body should match "
                f"'{ctx.get('pattern')}'")
    if kind == "too_long" and isinstance(value, list):  # maxItems
        return f"{path}: Too many: {len(value)}: must have at most {ctx.get('max_length')} items"
    if kind in ("string_too_long", "too_long"):
        return f"{path}: Too long: may not be more than {ctx.get('max_length')}"
    if kind in ("string_too_short", "too_short"):
        return f"{path}: Invalid value: {_value(value)}: {path} in body should be at least " \
               f"{ctx.get('min_length')} chars long"
    if kind == "value_error" and isinstance(ctx.get("error"), RuleViolation):
        rule = ctx["error"].rule
        return f"{path}{rule.field_path or ''}: Invalid value: \"object\": {rule.message}"
    return f"{path}: Invalid value: {_value(value)}: {err['msg']}"


def format_errors(exc: ValidationError, prefix: str = "spec") -> list[str]:
    """One API-server-style line per error, for the object at ``prefix``."""
    return [_one(prefix, e) for e in exc.errors(include_url=False)]


def validate(model: type[BaseModel], data: Any, prefix: str = "spec") -> Any:
    """Validate ``data`` (wire form) or raise :class:`InvalidObject` with API-style lines."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidObject(format_errors(exc, prefix)) from None


class InvalidObject(ValueError):
    """An object the API server would reject; ``lines`` are its messages."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines
