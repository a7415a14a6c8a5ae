"""Provision: the custom fields the plan needs, created in Pipedrive (or found there) before any record moves."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from migration_pipeline.mapping.confirmation import require_confirmed
from migration_pipeline.mapping.payload import PayloadFields
from migration_pipeline.pipedrive.client import PipedriveClient
from migration_pipeline.pipedrive.fields import CustomFieldRegistry
from migration_pipeline.steps.objects import OBJECTS
from migration_pipeline.mapping.rules.custom_entities import custom_fields as custom_entity_fields
from migration_pipeline.mapping.spec import CustomFieldTarget
from migration_pipeline.steps.plan import Plan, load_plan
from migration_pipeline.warehouse.catalog import Warehouse

FIELDS_TABLE = "idmap.fields"
FIELDS_COLUMNS = "object VARCHAR, name VARCHAR, field_code VARCHAR, field_type VARCHAR, is_custom BOOLEAN, options JSON"
OPTION_TYPES = ("enum", "set")


async def provision_custom_fields(client: PipedriveClient, warehouse: Warehouse, mappings_dir: Path) -> pd.DataFrame:
    """Ensure every custom field of the plan exists, then store what payloads need of each object's fields.

    `idmap.fields` gets one row per custom field of the plan (name, key, type, options) and
    one per standard option field (`industry`...), whose option labels payloads turn into ids.
    """
    require_confirmed(mappings_dir)
    plan = load_plan(mappings_dir)
    registry = CustomFieldRegistry(client)
    rows = []
    for item in OBJECTS:
        wanted = custom_fields_for(plan, item.name)
        for custom in wanted:
            await registry.ensure(item.field_entity, custom.name, custom.field_type, custom.options)
        names = {custom.name for custom in wanted}
        for definition in await registry.fields(item.field_entity):
            standard_options = not definition.is_custom_field and definition.field_type in OPTION_TYPES
            if (definition.is_custom_field and definition.field_name in names) or standard_options:
                options = {option.label: option.id for option in definition.options or []}
                rows.append({
                    "object": item.name,
                    "name": definition.field_name if definition.is_custom_field else definition.field_code,
                    "field_code": definition.field_code,
                    "field_type": definition.field_type,
                    "is_custom": definition.is_custom_field,
                    "options": json.dumps(options) if definition.field_type in OPTION_TYPES else None,
                })
    frame = pd.DataFrame(rows, columns=["object", "name", "field_code", "field_type", "is_custom", "options"])
    with warehouse.connect() as con:
        con.execute(f"CREATE TABLE IF NOT EXISTS {FIELDS_TABLE} ({FIELDS_COLUMNS})")
    warehouse.replace_rows(FIELDS_TABLE, frame)
    return frame[frame["is_custom"]]


def custom_fields_for(plan: Plan, object_name: str) -> list[CustomFieldTarget]:
    """Every custom field `object_name` needs: its workbook's ("Dynamics ID" first), then the custom entities' flattened onto it."""
    wanted = list(plan.object_maps[object_name].custom_fields)
    for entity in plan.custom_entities.entities:
        if entity.target_object == object_name:
            wanted += [field for field in custom_entity_fields(entity) if field.name not in {w.name for w in wanted}]
    return wanted


def provisioned_fields(warehouse: Warehouse, object_name: str) -> pd.DataFrame:
    """The rows of `idmap.fields` for one object."""
    with warehouse.connect() as con:
        con.execute(f"CREATE TABLE IF NOT EXISTS {FIELDS_TABLE} ({FIELDS_COLUMNS})")
        return con.execute(f"SELECT * FROM {FIELDS_TABLE} WHERE object = ?", [object_name]).df()


def payload_fields(warehouse: Warehouse, object_name: str, linked_objects: tuple[str, ...] = ("organizations", "persons")) -> PayloadFields:
    """What turns this object's staged rows into request bodies: custom-field keys and types, option ids, ID maps."""
    rows = provisioned_fields(warehouse, object_name)
    custom = rows[rows["is_custom"].astype(bool)]
    options = {row.name: json.loads(row.options) for row in rows.itertuples() if isinstance(row.options, str)}
    return PayloadFields(
        codes=dict(zip(custom["name"], custom["field_code"], strict=True)),
        types=dict(zip(custom["name"], custom["field_type"], strict=True)),
        options=options,
        links={name: warehouse.idmap(name) for name in linked_objects},
    )
