"""Field definitions (system and custom) and the typing of custom-field values.

Custom fields get a random 40-hex `field_code` per simulator instance, as field keys differ
per Pipedrive company: a client that hard-codes keys fails here as it would in production.
v2 bodies carry values under `custom_fields` with strict JSON types; v1 leads carry the deal
fields' values at the top level in v1 format, converted by `from_v1` / `to_v1`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from migration_pipeline.sandbox.pipedrive.schemas import ValidationFailed

ENTITIES = ("organization", "person", "deal", "product", "activity")
CREATABLE_TYPES = frozenset({"varchar", "text", "double", "phone", "date", "daterange", "time", "timerange",
                             "set", "enum", "varchar_auto", "address", "monetary", "org", "people", "user"})
OPTION_TYPES = frozenset({"enum", "set"})
ADDRESS_PARTS = ("value", "country", "admin_area_level_1", "admin_area_level_2", "locality", "sublocality",
                 "route", "street_number", "subpremise", "postal_code", "formatted_address")
SUBFIELDS = {
    "monetary": [("currency", "Currency", "varchar")],
    "daterange": [("until", "End date", "date")],
    "timerange": [("until", "End time", "time")],
    "address": [(part, part.replace("_", " ").capitalize(), "varchar") for part in ADDRESS_PARTS[1:]],
}
_TIME = re.compile(r"([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$")

# (field_code, field_name, field_type) of the system fields each entity lists.
SYSTEM_FIELDS: dict[str, list[tuple[str, str, str]]] = {
    "organization": [("id", "ID", "int"), ("name", "Name", "varchar"), ("owner_id", "Owner", "user"),
                     ("address", "Address", "address"), ("website", "Website", "varchar"),
                     ("linkedin", "LinkedIn profile", "varchar"), ("industry", "Industry", "enum"),
                     ("annual_revenue", "Annual revenue", "monetary"), ("employee_count", "Number of employees", "int"),
                     ("label_ids", "Labels", "set"), ("visible_to", "Visible to", "visible_to"),
                     ("add_time", "Organization created", "date"), ("update_time", "Update time", "date")],
    "person": [("id", "ID", "int"), ("name", "Name", "varchar"), ("first_name", "First name", "varchar"),
               ("last_name", "Last name", "varchar"), ("owner_id", "Owner", "user"), ("org_id", "Organization", "org"),
               ("emails", "Email", "varchar"), ("phones", "Phone", "phone"), ("label_ids", "Labels", "set"),
               ("visible_to", "Visible to", "visible_to"), ("add_time", "Person created", "date"),
               ("update_time", "Update time", "date")],
    "deal": [("id", "ID", "int"), ("title", "Title", "varchar"), ("value", "Value", "monetary"),
             ("owner_id", "Owner", "user"), ("person_id", "Contact person", "people"),
             ("org_id", "Organization", "org"),
             ("pipeline_id", "Pipeline", "int"), ("stage_id", "Stage", "stage"), ("status", "Status", "status"),
             ("probability", "Probability", "double"), ("expected_close_date", "Expected close date", "date"),
             ("lost_reason", "Lost reason", "varchar_options"), ("label_ids", "Label", "set"),
             ("visible_to", "Visible to", "visible_to"), ("add_time", "Deal created", "date"),
             ("update_time", "Update time", "date"), ("won_time", "Won time", "date"),
             ("lost_time", "Lost time", "date"),
             ("close_time", "Deal closed on", "date")],
    "product": [("id", "ID", "int"), ("name", "Name", "varchar"), ("code", "Product code", "varchar"),
                ("description", "Description", "text"), ("unit", "Unit", "varchar"), ("tax", "Tax", "double"),
                ("category", "Category", "enum"), ("owner_id", "Owner", "user"), ("prices", "Price", "price_list"),
                ("visible_to", "Visible to", "visible_to"), ("add_time", "Product created", "date")],
    "activity": [("id", "ID", "int"), ("subject", "Subject", "varchar"), ("type", "Type", "varchar_options"),
                 ("due_date", "Due date", "date"), ("due_time", "Due time", "time"), ("duration", "Duration", "time"),
                 ("owner_id", "Assigned to user", "user"), ("deal_id", "Deal", "deal"), ("lead_id", "Lead", "lead"),
                 ("person_id", "Contact person", "people"), ("org_id", "Organization", "org"),
                 ("done", "Done", "boolean"), ("busy", "Free/busy", "boolean"), ("note", "Note", "text"),
                 ("add_time", "Add time", "date"), ("update_time", "Update time", "date")],
}
LEAD_SYSTEM_FIELDS = [("title", "Title", "varchar"), ("owner_id", "Owner", "user"),
                      ("person_id", "Contact person", "people"), ("organization_id", "Organization", "org"),
                      ("value", "Value", "monetary"), ("expected_close_date", "Expected close date", "date"),
                      ("label_ids", "Labels", "set"), ("source_name", "Source", "varchar")]


@dataclass
class FieldDef:
    id: int
    entity: str
    field_code: str
    field_name: str
    field_type: str
    is_custom_field: bool
    add_time: str
    options: list[dict[str, Any]] | None = None
    description: str | None = None
    ui_visibility: dict[str, Any] = field(default_factory=dict)
    important_fields: dict[str, Any] = field(default_factory=dict)
    required_fields: dict[str, Any] = field(default_factory=dict)
    update_time: str | None = None
    is_deleted: bool = False

    def option_ids(self) -> set[int]:
        return {option["id"] for option in self.options or []}

    def v2(self, include: frozenset[str] = frozenset()) -> dict[str, Any]:
        out: dict[str, Any] = {
            "field_code": self.field_code,
            "field_name": self.field_name,
            "field_type": self.field_type,
            "options": [dict(option) for option in self.options] if self.options is not None else None,
            "subfields": [{"field_code": f"{self.field_code}_{code}", "field_name": name, "field_type": kind}
                          for code, name, kind in SUBFIELDS.get(self.field_type, [])] or None,
            "is_custom_field": self.is_custom_field,
            "is_optional_response_field": False,
        }
        if self.description is not None:
            out["description"] = self.description
        for name in ("ui_visibility", "important_fields", "required_fields"):
            if name in include:
                out[name] = getattr(self, name)
        return out

    def v1(self, order_nr: int) -> dict[str, Any]:
        """The v1 field shape (`/v1/leadFields`): `key`, `name`, `edit_flag` for custom fields."""
        return {
            "id": self.id, "key": self.field_code, "name": self.field_name, "order_nr": order_nr,
            "field_type": self.field_type, "add_time": self.add_time,
            "update_time": None, "last_updated_by_user_id": None, "created_by_user_id": None,
            "active_flag": True, "edit_flag": self.is_custom_field, "index_visible_flag": True,
            "details_visible_flag": True, "add_visible_flag": True, "important_flag": False,
            "bulk_edit_allowed": True, "searchable_flag": False, "filtering_allowed": True,
            "sortable_flag": True, "mandatory_flag": False,
            "options": [{"id": o["id"], "label": o["label"]} for o in self.options] if self.options else None,
            "options_deleted": [], "is_subfield": False, "subfields": [],
        }


@dataclass
class References:
    """Existence checks a value of a `user`, `org` or `people` field needs."""

    active_user: Callable[[int], bool]
    active_org: Callable[[int], bool]
    active_person: Callable[[int], bool]
    currency: Callable[[str], bool]


def _date(value: Any, path: str) -> str:
    if type(value) is not str or len(value) != 10:
        raise ValidationFailed(path, "Expected a date in format YYYY-MM-DD")
    try:
        dt.date.fromisoformat(value)
    except ValueError as error:
        raise ValidationFailed(path, "Expected a date in format YYYY-MM-DD") from error
    return value


def _time(value: Any, path: str) -> str:
    if type(value) is not str or not _TIME.match(value):
        raise ValidationFailed(path, "Expected a time in format HH:MM:SS")
    return value if len(value) == 8 else value + ":00"


def _object(value: Any, path: str, allowed: tuple[str, ...], required: tuple[str, ...]) -> dict[str, Any]:
    if type(value) is not dict:
        raise ValidationFailed(path, "Expected 'object' as value")
    for key in value:
        if key not in allowed:
            raise ValidationFailed(f"{path}.{key}", f"Parameter '{key}' is not allowed for this request")
    for key in required:
        if key not in value:
            raise ValidationFailed(f"{path}.{key}", f"Parameter '{key}' is required")
    return value


def _int_id(value: Any, path: str, exists: Callable[[int], bool], what: str) -> int:
    if type(value) is not int:
        raise ValidationFailed(path, "Expected 'number' as value")
    if not exists(value):
        raise ValidationFailed(path, f"{what} with id {value} does not exist")
    return value


def check_value(definition: FieldDef, value: Any, refs: References, path: str) -> Any:
    """The stored form of one v2 custom-field value, or ValidationFailed."""
    if value is None:
        return None
    kind = definition.field_type
    if kind in ("varchar", "varchar_auto"):
        if type(value) is not str:
            raise ValidationFailed(path, "Expected 'string' as value")
        if len(value) > 255:
            raise ValidationFailed(path, "Value must be at most 255 characters long")
        return value
    if kind in ("text", "phone"):
        if type(value) is not str:
            raise ValidationFailed(path, "Expected 'string' as value")
        return value
    if kind == "double":
        if type(value) not in (int, float):
            raise ValidationFailed(path, "Expected 'number' as value")
        return value
    if kind == "monetary":
        value = _object(value, path, ("value", "currency"), ("value", "currency"))
        if type(value["value"]) not in (int, float):
            raise ValidationFailed(f"{path}.value", "Expected 'number' as value")
        if type(value["currency"]) is not str or not refs.currency(value["currency"]):
            raise ValidationFailed(f"{path}.currency", f"Unknown currency {value['currency']!r}")
        return {"value": value["value"], "currency": value["currency"]}
    if kind == "enum":
        if type(value) is not int:
            raise ValidationFailed(path, f"Expected 'number' as value for single option field {definition.field_code}")
        if value not in definition.option_ids():
            raise ValidationFailed(path, f"Option {value} does not exist for field {definition.field_code}")
        return value
    if kind == "set":
        if type(value) is not list or not all(type(item) is int for item in value):
            raise ValidationFailed(
                path, f"Expected an array of numbers for multiple option field {definition.field_code}")
        if not value:
            raise ValidationFailed(path, "Array must contain at least 1 item; send null to clear the field")
        missing = [item for item in value if item not in definition.option_ids()]
        if missing:
            raise ValidationFailed(path, f"Options {missing} do not exist for field {definition.field_code}")
        return sorted(set(value))
    if kind == "date":
        return _date(value, path)
    if kind == "daterange":
        value = _object(value, path, ("value", "until"), ("value", "until"))
        return {"value": _date(value["value"], f"{path}.value"), "until": _date(value["until"], f"{path}.until")}
    if kind == "time":
        value = _object(value, path, ("value", "timezone_name"), ("value",))
        return {"value": _time(value["value"], f"{path}.value"), "timezone_name": value.get("timezone_name")}
    if kind == "timerange":
        value = _object(value, path, ("value", "until", "timezone_name"), ("value", "until"))
        return {"value": _time(value["value"], f"{path}.value"), "until": _time(value["until"], f"{path}.until"),
                "timezone_name": value.get("timezone_name")}
    if kind == "address":
        value = _object(value, path, ADDRESS_PARTS, ("value",))
        for key, part in value.items():
            if part is not None and type(part) is not str:
                raise ValidationFailed(f"{path}.{key}", "Expected 'string' as value")
        return {part: value.get(part) for part in ADDRESS_PARTS}
    if kind == "user":
        return _int_id(value, path, refs.active_user, "Active user")
    if kind == "org":
        return _int_id(value, path, refs.active_org, "Organization")
    if kind == "people":
        return _int_id(value, path, refs.active_person, "Person")
    raise ValidationFailed(path, f"Field type {kind} cannot be set through the API")


def check_values(definitions: dict[str, FieldDef], values: Any, refs: References) -> dict[str, Any]:
    """Validate a v2 `custom_fields` object; unknown keys are refused (the stricter reading)."""
    if type(values) is not dict:
        raise ValidationFailed("custom_fields", "Expected 'object' as value")
    out = {}
    for code, value in values.items():
        definition = definitions.get(code)
        if definition is None:
            raise ValidationFailed(f"custom_fields.{code}", f"Parameter '{code}' is not allowed for this request")
        out[code] = check_value(definition, value, refs, f"custom_fields.{code}")
    return out


def from_v1(definitions: dict[str, FieldDef], body: dict[str, Any], refs: References) -> dict[str, Any]:
    """Read deal-field values written the v1 way at the top level of a lead body."""
    out: dict[str, Any] = {}
    for code, definition in definitions.items():
        kind = definition.field_type
        sub = {key.removeprefix(f"{code}_"): body[key] for key in body if key.startswith(f"{code}_")}
        if code not in body:
            if sub:
                raise ValidationFailed(next(iter(sub)), f"'{code}' must be sent with its subfields")
            continue
        value = body[code]
        if value is None:
            out[code] = None
            continue
        if kind == "monetary":
            value = {"value": value, "currency": sub.get("currency")}
        elif kind in ("daterange", "timerange"):
            value = {"value": value, "until": sub.get("until")}
        elif kind == "time":
            value = {"value": value}
        elif kind == "address":
            value = {"value": value, **sub}
        elif kind == "enum" and type(value) is str and value.isdigit():
            value = int(value)
        elif kind == "set" and type(value) is str:
            value = [int(part) for part in value.split(",") if part.strip().isdigit()]
        out[code] = check_value(definition, value, refs, code)
    return out


def is_v1_key(definitions: dict[str, FieldDef], key: str) -> bool:
    """Whether a top-level lead key is a deal field's hash or one of its v1 subfield keys."""
    if key in definitions:
        return True
    code, _, suffix = key.partition("_")
    definition = definitions.get(code)
    if definition is None:
        return False
    return suffix in {name for name, _, _ in SUBFIELDS.get(definition.field_type, [])}


def to_v1(definitions: dict[str, FieldDef], values: dict[str, Any]) -> dict[str, Any]:
    """The v1 top-level form of stored values; only fields with a value appear."""
    out: dict[str, Any] = {}
    for code, value in values.items():
        definition = definitions.get(code)
        if value is None or definition is None:
            continue
        kind = definition.field_type
        if kind == "monetary":
            out[code], out[f"{code}_currency"] = value["value"], value["currency"]
        elif kind in ("daterange", "timerange"):
            out[code], out[f"{code}_until"] = value["value"], value["until"]
        elif kind == "time":
            out[code] = value["value"]
        elif kind == "address":
            out[code] = value["value"]
            out.update({f"{code}_{part}": value[part] for part in ADDRESS_PARTS[1:] if value.get(part) is not None})
        elif kind == "enum":
            out[code] = str(value)
        elif kind == "set":
            out[code] = ",".join(str(item) for item in value)
        else:
            out[code] = value
    return out
