"""The shapes the client parses from Pipedrive: the response envelope and field definitions.

Records themselves stay plain dicts (the loader builds and compares them field by field);
only what the client itself relies on is validated here. Extra keys are allowed throughout,
because Pipedrive adds fields without notice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Envelope(BaseModel):
    """`{"success": true, "data": ..., "additional_data": {...}}`, as every endpoint answers."""

    model_config = ConfigDict(extra="allow")

    success: bool = True
    data: Any = None
    additional_data: dict[str, Any] | None = None

    @property
    def next_cursor(self) -> str | None:
        """v2 cursor paging: the next page's cursor, None on the last page."""
        return (self.additional_data or {}).get("next_cursor")

    @property
    def next_start(self) -> int | None:
        """v1 offset paging: the next page's `start`, None on the last page."""
        pagination = (self.additional_data or {}).get("pagination") or {}
        if not pagination.get("more_items_in_collection"):
            return None
        return pagination.get("next_start")


class ErrorBody(BaseModel):
    """`{"success": false, "error": ..., "error_info": ..., "code"|"errorCode": ...}`."""

    model_config = ConfigDict(extra="allow")

    error: str | None = None
    error_info: str | None = None
    code: str | None = None
    errorCode: int | str | None = None  # noqa: N815 - Pipedrive's name (some v1 errors)


class FieldOption(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: int | str
    label: str


class FieldDefinition(BaseModel):
    """One field of an entity, normalised from v2 (`field_code`...) or v1 (`key`, `name`)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    field_code: str
    field_name: str
    field_type: str
    options: list[FieldOption] | None = None
    is_custom_field: bool = False

    @classmethod
    def from_v1(cls, raw: dict[str, Any]) -> FieldDefinition:
        """A v1 field (`/v1/leadFields`): `key`, `name`, and `edit_flag` for custom fields."""
        return cls(
            field_code=raw["key"],
            field_name=raw["name"],
            field_type=raw["field_type"],
            options=raw.get("options") or None,
            is_custom_field=bool(raw.get("edit_flag", False)),
        )

    def option_ids(self) -> dict[str, int | str]:
        """Option label -> id, for enum and set fields (values are sent as ids)."""
        return {option.label: option.id for option in self.options or []}


class ParentRef(BaseModel):
    """The one record a note or file hangs on (`{"deal_id": 5}`)."""

    model_config = ConfigDict(extra="forbid")

    deal_id: int | None = None
    person_id: int | None = None
    org_id: int | None = None
    product_id: int | None = None
    activity_id: int | None = None
    lead_id: str | None = Field(default=None, description="a UUID")
    project_id: int | None = None

    def form(self) -> dict[str, str]:
        """The multipart form fields, checking that exactly one parent is named."""
        named = {key: str(value) for key, value in self.model_dump(exclude_none=True).items()}
        if len(named) != 1:
            raise ValueError(f"a file needs exactly one parent, got {sorted(named) or 'none'}")
        return named


@dataclass(frozen=True)
class Call:
    """One API call as the caller asked for it (never with its headers, which hold the token)."""

    method: str
    version: str
    path: str  # relative to /api/{version}, e.g. "/deals/5"
    params: dict[str, Any] | None = None
    json: Any = None
    files: dict[str, Any] | None = None
    data: dict[str, Any] | None = None

    @property
    def url(self) -> str:
        return f"/api/{self.version}{self.path}"

    @property
    def body(self) -> Any:
        """What was sent: the JSON body, or the form fields and file names of a multipart upload."""
        if self.json is not None:
            return self.json
        names = [value[0] if isinstance(value, tuple) else key for key, value in (self.files or {}).items()]
        return {**(self.data or {}), **({"files": names} if names else {})}
