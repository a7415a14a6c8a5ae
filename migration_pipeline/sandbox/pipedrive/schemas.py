"""Strict validation of request bodies and query strings against the official specs.

The real v2 API refuses what its schema does not describe: unknown keys, numbers sent as
strings, 0/1 for booleans, missing required keys. The published schemas are permissive
(no `additionalProperties: false`), so this walker adds that rule itself: an object schema
that lists properties accepts only those. Taking the schemas from the spec keeps one source
of truth; checks that need state (does org 5 exist?) live in the route handlers.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from migration_pipeline.sandbox.pipedrive.spec import Version, load_spec, operation, resolve

_JSON_TYPE_NAMES = {"integer": "number", "number": "number", "boolean": "boolean", "string": "string",
                    "array": "array", "object": "object"}
_INT = re.compile(r"-?\d+$")
_NUMBER = re.compile(r"-?\d+(\.\d+)?$")


class ValidationFailed(Exception):
    """A request that breaks the schema; the message is the one the API puts in `error`."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"Validation failed: {path}: {problem}")
        self.path = path


def merged(spec: dict[str, Any], schema: Any) -> dict[str, Any]:
    """Flatten `allOf` into one schema (properties and required lists are unioned)."""
    schema = resolve(spec, schema)
    if "allOf" not in schema:
        return schema
    out: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    properties: dict[str, Any] = dict(out.get("properties", {}))
    required: list[str] = list(out.get("required", []))
    for part in schema["allOf"]:
        part = merged(spec, part)
        for key, value in part.items():
            if key == "properties":
                properties.update(value)
            elif key == "required":
                required.extend(value)
            else:
                out.setdefault(key, value)
    if properties:
        out["properties"] = properties
    if required:
        out["required"] = required
    return out


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "integer":
        # Pipedrive parses JSON in JavaScript, where 78.0 and 78 are the same number.
        return type(value) is int or (type(value) is float and value.is_integer())
    if kind == "number":
        return type(value) in (int, float)
    if kind == "boolean":
        return type(value) is bool
    if kind == "string":
        return type(value) is str
    if kind == "array":
        return type(value) is list
    if kind == "object":
        return type(value) is dict
    return True


def _format_ok(fmt: str | None, value: str) -> bool:
    if fmt == "date":
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            return False
        return len(value) == 10
    if fmt == "uuid":
        try:
            uuid.UUID(value)
        except ValueError:
            return False
        return True
    return True


def check_value(spec: dict[str, Any], schema: Any, value: Any, path: str,
                allow_extra: Callable[[str], bool] | None = None) -> None:
    """Raise ValidationFailed unless `value` fits `schema` exactly. `allow_extra` (top level
    only) admits extra keys such as v1 custom-field hashes."""
    schema = merged(spec, schema)
    if value is None:
        if schema.get("nullable"):
            return
        raise ValidationFailed(path, "Value must not be null")
    for key in ("oneOf", "anyOf"):
        if key in schema:
            for option in schema[key]:
                try:
                    check_value(spec, option, value, path)
                    return
                except ValidationFailed:
                    continue
            raise ValidationFailed(path, "Value does not match any allowed schema")
    kind = schema.get("type") or ("object" if "properties" in schema else None)
    if kind is not None and not _type_ok(kind, value):
        raise ValidationFailed(path, f"Expected '{_JSON_TYPE_NAMES.get(kind, kind)}' as value")
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(str(item) for item in schema["enum"])
        raise ValidationFailed(path, f"Value must be one of: {allowed}")
    if isinstance(value, str) and not _format_ok(schema.get("format"), value):
        raise ValidationFailed(path, f"Expected a value of format '{schema['format']}'")
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise ValidationFailed(path, f"Array must contain at most {schema['maxItems']} items")
        if "items" in schema:
            for index, item in enumerate(value):
                check_value(spec, schema["items"], item, f"{path}.{index}" if path else str(index))
    if isinstance(value, dict) and "properties" in schema:
        properties = schema["properties"]
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            if key not in properties:
                if allow_extra is not None and allow_extra(key):
                    continue
                raise ValidationFailed(where, f"Parameter '{key}' is not allowed for this request")
            check_value(spec, properties[key], item, where)
        for key in schema.get("required", []):
            if key not in value:
                where = f"{path}.{key}" if path else key
                raise ValidationFailed(where, f"Parameter '{key}' is required")


def body_schema(version: Version, method: str, template: str,
                content_type: str = "application/json") -> dict[str, Any] | None:
    spec = load_spec(version)
    request_body = resolve(spec, operation(version, method, template).get("requestBody"))
    if not request_body:
        return None
    return request_body["content"].get(content_type, {}).get("schema")


def validate_body(version: Version, method: str, template: str, body: Any,
                  allow_extra: Callable[[str], bool] | None = None) -> None:
    """Check a JSON body against the operation's request schema."""
    schema = body_schema(version, method, template)
    if schema is None:
        raise ValidationFailed("body", "This request takes no body")
    expected, name = (list, "array") if schema.get("type") == "array" else (dict, "object")
    if type(body) is not expected:
        raise ValidationFailed("body", f"Expected '{name}' as value")
    check_value(load_spec(version), schema, body, "", allow_extra)


def _parameters(version: Version, method: str, template: str) -> dict[str, dict[str, Any]]:
    spec = load_spec(version)
    item = spec["paths"][template]
    found: dict[str, dict[str, Any]] = {}
    for raw in [*item.get("parameters", []), *operation(version, method, template).get("parameters", [])]:
        parameter = resolve(spec, raw)
        if parameter["in"] == "query":
            found[parameter["name"]] = parameter
    return found


def _parse_scalar(schema: dict[str, Any], raw: str, name: str) -> Any:
    kind = schema.get("type", "string")
    if kind == "integer":
        if not _INT.match(raw):
            raise ValidationFailed(name, "Expected 'number' as value")
        return int(raw)
    if kind == "number":
        if not _NUMBER.match(raw):
            raise ValidationFailed(name, "Expected 'number' as value")
        return float(raw) if "." in raw else int(raw)
    if kind == "boolean":
        if raw not in ("true", "false"):
            raise ValidationFailed(name, "Expected 'boolean' as value")
        return raw == "true"
    return raw


def validate_query(version: Version, method: str, template: str,
                   query: Mapping[str, str], ignore: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Parse the query string by the operation's parameters; unknown parameters are refused."""
    spec = load_spec(version)
    parameters = _parameters(version, method, template)
    parsed: dict[str, Any] = {}
    for name, raw in query.items():
        if name in ignore:
            continue
        if name not in parameters:
            raise ValidationFailed(name, f"Parameter '{name}' is not allowed for this request")
        schema = merged(spec, parameters[name].get("schema", {}))
        if schema.get("type") == "array":
            items = merged(spec, schema.get("items", {}))
            value: Any = [_parse_scalar(items, part, name) for part in raw.split(",") if part != ""]
        else:
            value = _parse_scalar(schema, raw, name)
        if "enum" in schema and isinstance(value, str):
            pieces = {piece for option in schema["enum"] for piece in str(option).split(",")}
            if any(part not in pieces for part in value.split(",")):
                raise ValidationFailed(name, f"Value must be one of: {', '.join(map(str, schema['enum']))}")
        elif "enum" in schema and value not in schema["enum"]:
            raise ValidationFailed(name, f"Value must be one of: {', '.join(map(str, schema['enum']))}")
        if "maximum" in schema and isinstance(value, int | float) and value > schema["maximum"]:
            raise ValidationFailed(name, f"Value must be at most {schema['maximum']}")
        parsed[name] = value
    for name, parameter in parameters.items():
        if parameter.get("required") and name not in parsed:
            raise ValidationFailed(name, f"Parameter '{name}' is required")
    return parsed
