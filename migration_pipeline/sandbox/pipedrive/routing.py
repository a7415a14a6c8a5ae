"""Request context, the handler registry, and the checks and paging every handler shares.

Handlers are registered against the spec's own path templates, so the simulator's routing,
token costs and validation all key on the same strings.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from migration_pipeline.sandbox.pipedrive.responses import ApiError, bad_request, not_found, success
from migration_pipeline.sandbox.pipedrive.schemas import ValidationFailed, validate_body
from migration_pipeline.sandbox.pipedrive.simulator import Simulator
from migration_pipeline.sandbox.pipedrive.spec import Version

RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$")
RFC3339_FILTER = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
V1_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
MAX_LIMIT = 500
DEFAULT_LIMIT = 100


@dataclass
class Ctx:
    sim: Simulator
    request: Request
    version: Version
    method: str
    template: str
    params: dict[str, str]
    query: dict[str, Any]
    user_id: int

    async def json(self) -> Any:
        """The JSON body: an object, or an array where the operation takes one (bulk option adds)."""
        raw = await self.request.body()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError as error:
            raise bad_request("Invalid JSON in request body", "ERR_SCHEMA_VALIDATION_FAILED") from error
        if type(body) not in (dict, list):
            raise ApiError(400, "Validation failed: body: Expected 'object' as value", "ERR_SCHEMA_VALIDATION_FAILED")
        return body

    async def validated(self, allow_extra: Callable[[str], bool] | None = None) -> Any:
        body = await self.json()
        try:
            validate_body(self.version, self.method, self.template, body, allow_extra)
        except ValidationFailed as error:
            raise ApiError(400, str(error), "ERR_SCHEMA_VALIDATION_FAILED") from error
        return body

    def int_param(self, name: str = "id") -> int:
        raw = self.params[name]
        if not raw.isdigit():
            raise invalid(name, "Expected 'number' as value")
        return int(raw)

    def ok(self, data: Any, status: int = 200, additional_data: Any = None,
           extra: dict[str, Any] | None = None) -> Response:
        return success(self.version, self.method, self.template, data, status, additional_data, extra)


Handler = Callable[[Ctx], Awaitable[Response]]
HANDLERS: dict[tuple[str, str, str], Handler] = {}


def route(version: Version, method: str, template: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        HANDLERS[(version, method.upper(), template)] = handler
        return handler
    return register


def path_params(template: str, path: str) -> dict[str, str]:
    return {part[1:-1]: value for part, value in zip(template.split("/"), path.split("/"), strict=True)
            if part.startswith("{")}


# -- shared checks ---------------------------------------------------------------------------
def invalid(field: str, message: str) -> ApiError:
    return ApiError(400, f"Validation failed: {field}: {message}", "ERR_SCHEMA_VALIDATION_FAILED")


def require_live(sim: Simulator, table: str, record_id: Any, field: str, what: str) -> dict[str, Any]:
    record = sim.store.live(table, record_id)
    if record is None:
        raise bad_request(f"{what} with id {record_id} does not exist or is deleted ({field})")
    return record


def require_owner(sim: Simulator, user_id: Any, field: str = "owner_id") -> int:
    if not sim.active_user(user_id):
        raise bad_request(f"User with id {user_id} does not exist or is not active ({field})")
    return int(user_id)


def require_rfc3339(value: Any, field: str) -> str:
    if type(value) is not str or not RFC3339.match(value):
        raise invalid(field, "Expected a date-time in RFC 3339 format (YYYY-MM-DDTHH:MM:SSZ)")
    return value


def require_v1_time(value: Any, field: str) -> str:
    if type(value) is not str or not V1_TIMESTAMP.match(value):
        raise invalid(field, "Expected a date-time in format YYYY-MM-DD HH:MM:SS")
    try:
        dt.datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
    except ValueError as error:
        raise invalid(field, "Expected a date-time in format YYYY-MM-DD HH:MM:SS") from error
    return value


def require_visible_to(sim: Simulator, value: Any) -> int:
    allowed = {1, 3} if sim.plan.name.lower() in {"lite", "growth", "essential", "advanced"} else {1, 3, 5, 7}
    if value not in allowed:
        raise ApiError(403, f"Visibility {value} is not available on this plan", "ERR_FORBIDDEN")
    return int(value)


def fetch(sim: Simulator, table: str, record_id: Any, what: str) -> dict[str, Any]:
    record = sim.store.get(table, record_id)
    if record is None:
        raise not_found(what)
    return record


def fetch_live(sim: Simulator, table: str, record_id: Any, what: str) -> dict[str, Any]:
    record = sim.store.live(table, record_id)
    if record is None:
        raise not_found(what)
    return record


# -- paging ----------------------------------------------------------------------------------
def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"offset": offset})).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        offset = orjson.loads(base64.urlsafe_b64decode(padded))["offset"]
    except (binascii.Error, ValueError, KeyError, TypeError) as error:
        raise invalid("cursor", "Invalid cursor") from error
    if type(offset) is not int or offset < 0:
        raise invalid("cursor", "Invalid cursor")
    return offset


def cursor_page(rows: list[Any], query: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """One page of a v2 list and its `additional_data` (`next_cursor` is null on the last page)."""
    limit = query.get("limit", DEFAULT_LIMIT)
    if limit < 1 or limit > MAX_LIMIT:
        raise invalid("limit", f"Value must be between 1 and {MAX_LIMIT}")
    offset = _decode_cursor(query["cursor"]) if "cursor" in query else 0
    page = rows[offset:offset + limit]
    more = offset + limit < len(rows)
    return page, {"next_cursor": _encode_cursor(offset + limit) if more else None}


def offset_page(rows: list[Any], query: dict[str, Any], max_limit: int = MAX_LIMIT) -> tuple[list[Any], dict[str, Any]]:
    """One page of a v1 list and its pagination block."""
    start = query.get("start", 0)
    limit = query.get("limit", DEFAULT_LIMIT)
    if start < 0:
        raise invalid("start", "Value must be at least 0")
    if limit < 1 or limit > max_limit:
        raise invalid("limit", f"Value must be between 1 and {max_limit}")
    page = rows[start:start + limit]
    pagination: dict[str, Any] = {"start": start, "limit": limit,
                                  "more_items_in_collection": start + limit < len(rows)}
    if pagination["more_items_in_collection"]:
        pagination["next_start"] = start + limit
    return page, pagination


def sort_rows(rows: list[dict[str, Any]], query: dict[str, Any]) -> list[dict[str, Any]]:
    key = query.get("sort_by", "id")
    reverse = query.get("sort_direction", "asc") == "desc"
    return sorted(rows, key=lambda row: (row.get(key) is None, row.get(key) or 0, row["id"]), reverse=reverse)


def parse_ids(raw: str, field: str = "ids", maximum: int = 100) -> set[int]:
    parts = [part for part in raw.split(",") if part]
    if not all(part.strip().isdigit() for part in parts):
        raise invalid(field, "Expected comma-separated numbers")
    if len(parts) > maximum:
        raise invalid(field, f"At most {maximum} ids are allowed")
    return {int(part) for part in parts}


def updated_window(rows: list[dict[str, Any]], query: dict[str, Any]) -> list[dict[str, Any]]:
    for name in ("updated_since", "updated_until"):
        if name in query and not RFC3339_FILTER.match(query[name]):
            raise invalid(name, "Expected a date-time in format YYYY-MM-DDTHH:MM:SSZ")
    if "updated_since" in query:
        rows = [row for row in rows if row["update_time"] >= query["updated_since"]]
    if "updated_until" in query:
        rows = [row for row in rows if row["update_time"] < query["updated_until"]]
    return rows
