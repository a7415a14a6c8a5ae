"""Verify: read back what Pipedrive holds (list pages, never per-record GETs) and diff it field by field."""

from __future__ import annotations

from datetime import UTC, datetime

from migration_pipeline.mapping.payload import build_payload
from migration_pipeline.pipedrive.client import PipedriveClient
from migration_pipeline.steps.objects import MigratedObject
from migration_pipeline.steps.provision import payload_fields
from migration_pipeline.validation.diff import DiffResult, diff_object
from migration_pipeline.warehouse.catalog import Warehouse


async def verify_object(client: PipedriveClient, warehouse: Warehouse, item: MigratedObject) -> DiffResult:
    """Diff every staged record against Pipedrive; results replace this object's rows in `validation.*`."""
    fields = payload_fields(warehouse, item.name)
    names = {code: name for name, code in fields.codes.items()}
    staged = warehouse.read_staged(item.name)
    idmap = warehouse.idmap(item.name)
    actual = {str(record["id"]): record async for record in client.iter_v2(item.resource)}
    expected = (
        (str(row["source_id"]), idmap.get(str(row["source_id"])), build_payload(row, fields).body) for row in staged.to_dict("records")
    )
    result = diff_object(item.name, expected, actual, names)
    warehouse.replace_rows("validation.field_diff", result.differences, where="object = ?", params=[item.name])
    summary = result.summary.assign(checked_at=datetime.now(UTC))
    warehouse.replace_rows("validation.summary", summary, where="object = ?", params=[item.name])
    return result
