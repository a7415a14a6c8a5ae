"""Provision: the custom fields the plan needs, created in Pipedrive (or found there) before any record moves."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from migration_pipeline.mapping.confirmation import require_confirmed
from migration_pipeline.pipedrive.client import PipedriveClient
from migration_pipeline.pipedrive.fields import CustomFieldRegistry
from migration_pipeline.steps.objects import OBJECTS
from migration_pipeline.steps.plan import load_plan
from migration_pipeline.warehouse.catalog import Warehouse

FIELDS_TABLE = "idmap.custom_fields"
FIELDS_COLUMNS = "object VARCHAR, name VARCHAR, field_code VARCHAR, field_type VARCHAR"


async def provision_custom_fields(client: PipedriveClient, warehouse: Warehouse, mappings_dir: Path) -> pd.DataFrame:
    """Ensure every custom field of the plan exists; store and return (object, name, field_code, field_type)."""
    require_confirmed(mappings_dir)
    maps = load_plan(mappings_dir).object_maps
    registry = CustomFieldRegistry(client)
    rows = []
    for item in OBJECTS:
        for field in maps[item.name].custom_fields:
            code = await registry.ensure(item.field_entity, field.name, field.field_type, field.options)
            rows.append({"object": item.name, "name": field.name, "field_code": code, "field_type": field.field_type})
    frame = pd.DataFrame(rows, columns=["object", "name", "field_code", "field_type"])
    with warehouse.connect() as con:
        con.execute(f"CREATE TABLE IF NOT EXISTS {FIELDS_TABLE} ({FIELDS_COLUMNS})")
    warehouse.replace_rows(FIELDS_TABLE, frame)
    return frame


def field_keys(warehouse: Warehouse, object_name: str) -> dict[str, str]:
    """Custom-field name -> field code for one object, as provisioned."""
    with warehouse.connect() as con:
        con.execute(f"CREATE TABLE IF NOT EXISTS {FIELDS_TABLE} ({FIELDS_COLUMNS})")
        return dict(con.execute(f"SELECT name, field_code FROM {FIELDS_TABLE} WHERE object = ?", [object_name]).fetchall())
