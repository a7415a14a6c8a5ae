"""Response envelopes, API errors, and fitting payloads to the published response schemas.

Real Pipedrive answers `null` for an unset link such as a deal's `person_id`, while the
spec declares most of those properties non-nullable. The simulator keeps the spec's shape:
a null value the schema does not allow is left out. A client written against the sandbox
therefore reads optional keys with `.get()`, which works against both.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from migration_pipeline.sandbox.pipedrive.schemas import merged
from migration_pipeline.sandbox.pipedrive.spec import Version, load_spec, operation, resolve


class ApiError(Exception):
    """An error answered in Pipedrive's envelope."""

    def __init__(self, status: int, error: str, code: str | None = None, error_info: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.code = code
        self.error_info = error_info
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "success": False,
            "error": self.error,
            "error_info": self.error_info or _ERROR_INFO.get(self.status, _ERROR_INFO[404]),
            "data": None,
            "additional_data": None,
        }
        if self.code is not None:
            body["code"] = self.code
        return body


_ERROR_INFO = {
    400: "Please check the request body and parameters against the API reference.",
    401: "Please check the developers' documentation on authentication.",
    403: "Please check the limits of your plan and the permissions of the user.",
    404: "Please check the developers' documentation.",
    429: "Please slow down and retry later.",
}


def bad_request(message: str, code: str = "ERR_BAD_REQUEST") -> ApiError:
    return ApiError(400, message, code)


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found", "ERR_NOT_FOUND")


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


_conform_cache: dict[int, dict[str, Any]] = {}


def _schema(spec: dict[str, Any], node: Any) -> dict[str, Any]:
    key = id(node)
    cached = _conform_cache.get(key)
    if cached is None:
        cached = merged(spec, node)
        _conform_cache[key] = cached
    return cached


def conform(spec: dict[str, Any], schema: Any, value: Any) -> Any:
    """A copy of `value` without the nulls that `schema` does not allow."""
    schema = _schema(spec, schema)
    if isinstance(value, dict):
        properties = schema.get("properties")
        if not properties:
            return value
        out = {}
        for key, item in value.items():
            prop = properties.get(key)
            if prop is None:
                out[key] = item
                continue
            prop_schema = _schema(spec, prop)
            if item is None:
                if prop_schema.get("nullable") or not prop_schema:
                    out[key] = None
                continue
            out[key] = conform(spec, prop_schema, item)
        return out
    if isinstance(value, list) and "items" in schema:
        items = schema["items"]
        return [conform(spec, items, item) for item in value]
    return value


def response_schema(version: Version, method: str, template: str, status: int) -> Any:
    spec = load_spec(version)
    responses = operation(version, method, template)["responses"]
    answer = resolve(spec, responses.get(str(status)) or responses.get("200") or responses.get("201") or {})
    return answer.get("content", {}).get("application/json", {}).get("schema")


def success(version: Version, method: str, template: str, data: Any, status: int = 200,
            additional_data: Any = None, extra: dict[str, Any] | None = None) -> JSONResponse:
    """The success envelope, fitted to the operation's documented response schema."""
    body: dict[str, Any] = {"success": True, "data": data}
    if additional_data is not None:
        body["additional_data"] = additional_data
    if extra:
        body.update(extra)
    schema = response_schema(version, method, template, status)
    if schema is not None:
        body = conform(load_spec(version), schema, body)
    return JSONResponse(body, status_code=status)
