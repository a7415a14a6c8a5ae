"""Staged rows -> Pipedrive v2 request bodies.

The loader sends these bodies and the diff compares what Pipedrive holds against the same
bodies, so "what we meant to write" is defined once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

CUSTOM_PREFIX = "custom:"


def plain(value: Any) -> Any:
    """A JSON-ready Python value: numpy scalars unwrapped, NaN/NA and empty parts dropped to None."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Mapping):
        cleaned = {key: plain(item) for key, item in value.items()}
        cleaned = {key: item for key, item in cleaned.items() if item is not None}
        return cleaned or None
    if isinstance(value, (list, tuple, np.ndarray)):
        items = [plain(item) for item in value]
        return [item for item in items if item is not None] or None
    return value


REF_PREFIX = "ref:"
# A custom field holding a record: the object whose ID map turns its Dynamics id into a Pipedrive id.
LINKED_OBJECTS = {"org": "organizations", "people": "persons"}


@dataclass(frozen=True)
class PayloadFields:
    """What a staged row needs, beyond its own values, to become a request body for one object.

    `codes`: custom-field name -> its 40-hex key; `types`: custom-field name -> field type;
    `options`: field (a standard field's name or a custom field's name) -> option label -> id;
    `links`: migrated object -> Dynamics id -> Pipedrive id (the ID maps).
    """

    codes: Mapping[str, str] = field(default_factory=dict)
    types: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    links: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass
class Payload:
    """A request body, and the values it could not carry: (field, value, reason) each.

    `refused` values are rejects (an option Pipedrive does not have); `deferred` ones are links to
    records not in Pipedrive yet, set once those are loaded.
    """

    body: dict[str, Any]
    refused: list[tuple[str, str, str]] = field(default_factory=list)
    deferred: list[Deferred] = field(default_factory=list)


@dataclass(frozen=True)
class Deferred:
    """A link left out of a body because its record is not in Pipedrive yet: set by an update once it is.

    `key` is where it goes in the body: the field name, or the custom field's key under `custom_fields`.
    """

    key: str
    custom: bool
    linked_object: str
    linked_source_id: str


def build_payload(row: Mapping[str, Any], fields: PayloadFields) -> Payload:
    """One staged row -> a v2 body: custom fields under `custom_fields` by key, option labels as ids, links as Pipedrive ids."""
    payload = Payload({})
    custom: dict[str, Any] = {}
    for column, raw in row.items():
        if column == "source_id":
            continue
        value = plain(raw)
        if value is None:
            continue
        if column.startswith(REF_PREFIX):
            _, name, linked = column.split(":", 2)
            resolved = _link(payload, name, False, value, linked, fields.links.get(linked, {}))
            if resolved is not None:
                payload.body[name] = resolved
        elif column.startswith(CUSTOM_PREFIX):
            name = column.removeprefix(CUSTOM_PREFIX)
            if name not in fields.codes:
                raise KeyError(f"custom field {name!r} has not been provisioned")
            value = _resolve(payload, name, value, fields, fields.types.get(name), fields.codes[name])
            if value is not None:
                custom[fields.codes[name]] = value
        else:
            value = _resolve(payload, column, value, fields, None, column)
            if value is not None:
                payload.body[column] = value
    if custom:
        payload.body["custom_fields"] = custom
    return payload


def _resolve(payload: Payload, name: str, value: Any, fields: PayloadFields, field_type: str | None, key: str) -> Any:
    if field_type in LINKED_OBJECTS:
        linked = LINKED_OBJECTS[field_type]
        return _link(payload, key, True, value, linked, fields.links.get(linked, {}))
    options = fields.options.get(name)
    if options is None:
        return value
    by_label = {_folded(label): option_id for label, option_id in options.items()}
    labels = value if isinstance(value, list) else [value]
    ids = []
    for label in labels:
        if isinstance(label, int) and label in options.values():
            ids.append(label)
        elif _folded(str(label)) in by_label:
            ids.append(by_label[_folded(str(label))])
        else:
            payload.refused.append((name, str(label), f"Pipedrive has no option {label!r} for {name}"))
    if not ids:
        return None
    return sorted(set(ids)) if isinstance(value, list) else ids[0]


def _folded(label: str) -> str:
    """Labels match whatever their case and surrounding spaces (`Retail` is Pipedrive's `retail `)."""
    return " ".join(label.split()).casefold()


def _link(payload: Payload, key: str, custom: bool, value: Any, linked: str, idmap: Mapping[str, str]) -> Any:
    """A Dynamics id (or a list of them) as Pipedrive ids; lead ids are UUIDs, every other id a number."""
    if isinstance(value, list):
        ids = [_link(payload, key, custom, item, linked, idmap) for item in value]
        return [item for item in ids if item is not None] or None
    pipedrive_id = idmap.get(str(value))
    if pipedrive_id is None:
        payload.deferred.append(Deferred(key, custom, linked, str(value)))
        return None
    return int(pipedrive_id) if pipedrive_id.isdigit() else pipedrive_id


def iter_payloads(staged: pd.DataFrame, fields: PayloadFields) -> Iterator[tuple[str, Payload]]:
    """(source id, payload) for every staged row, in order."""
    for row in staged.to_dict("records"):
        yield str(row["source_id"]), build_payload(row, fields)
