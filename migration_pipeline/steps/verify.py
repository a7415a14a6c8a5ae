"""Verify: read back what Pipedrive holds (list pages, never per-record GETs) and diff it field by field.

Records linked to ones that existed in Pipedrive before the migration (`idmap.existing`) never
received the Dynamics values, so they are checked for presence and counted as
"(linked existing)", not diffed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from migration_pipeline.mapping.payload import build_payload
from migration_pipeline.pipedrive.client import PipedriveClient
from migration_pipeline.steps.existing import existing_ids
from migration_pipeline.steps.objects import MigratedObject
from migration_pipeline.steps.provision import payload_fields
from migration_pipeline.steps.targets import EXTRA_LISTS
from migration_pipeline.validation.diff import DiffResult, diff_object
from migration_pipeline.warehouse.catalog import Warehouse


async def verify_object(client: PipedriveClient, warehouse: Warehouse, item: MigratedObject) -> DiffResult:
    """Diff every staged record against Pipedrive; results replace this object's rows in `validation.*`."""
    fields = payload_fields(warehouse, item.name)
    names = {code: name for name, code in fields.codes.items()}
    staged = warehouse.read_staged(item.name)
    idmap = warehouse.idmap(item.name)
    linked = existing_ids(warehouse, item.name)
    actual = {str(record["id"]): record for listing in (item.resource, *EXTRA_LISTS.get(item.resource, ()))
              async for record in client.iter_v2(listing)}
    revalued = deal_values_from_products(warehouse) if item.name == "deals" else {}
    expected = (
        (str(row["source_id"]), idmap.get(str(row["source_id"])), _revalue(build_payload(row, fields).body, revalued.get(str(row["source_id"]))))
        for row in staged.to_dict("records")
    )
    result = diff_object(item.name, expected, actual, names, linked=linked)
    warehouse.replace_rows("validation.field_diff", result.differences, where="object = ?", params=[item.name])
    summary = result.summary.assign(checked_at=datetime.now(UTC))
    warehouse.replace_rows("validation.summary", summary, where="object = ?", params=[item.name])
    return result


def deal_values_from_products(warehouse: Warehouse) -> dict[str, float]:
    """Deal source id -> its value once its products are attached: Pipedrive sets the value of a deal with products
    to the sum of their lines (price x quantity, less the discount, plus an exclusive tax), whatever was sent."""
    if not warehouse.staged_path("deal_products").exists() or not warehouse.idmap("deal_products"):
        return {}
    lines = warehouse.read_staged("deal_products")
    lines = lines[lines["source_id"].isin(warehouse.idmap("deal_products"))]
    return {str(deal): round(sum(round(line_sum(line), 2) for line in group.to_dict("records")), 2)
            for deal, group in lines.groupby("ref:deal_id:deals")}


def line_sum(line: dict[str, Any]) -> float:
    gross = float(line.get("item_price") or 0) * float(line.get("quantity") or 0)
    discount = float(line.get("discount") or 0)
    net = gross - (gross * discount / 100 if line.get("discount_type") == "percentage" else discount)
    return net * (1 + float(line.get("tax") or 0) / 100) if line.get("tax_method") == "exclusive" else net


def _revalue(body: dict[str, Any], value: float | None) -> dict[str, Any]:
    return body if value is None else {**body, "value": value}
