"""Transform: raw Parquet -> staged payload table + rejects, under the confirmed plan."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from migration_pipeline.mapping.confirmation import require_confirmed
from migration_pipeline.mapping.transform import TransformContext, transform_object
from migration_pipeline.steps.objects import MigratedObject
from migration_pipeline.steps.plan import load_plan
from migration_pipeline.warehouse.catalog import Warehouse


@dataclass
class StageResult:
    object: str
    source_rows: int
    staged: int
    rejected_records: int
    rejected_fields: int


def stage_object(warehouse: Warehouse, mappings_dir: Path, item: MigratedObject) -> StageResult:
    require_confirmed(mappings_dir)
    plan = load_plan(mappings_dir)
    owner_map = plan.owner_map
    object_map = plan.object_maps[item.name]
    raw = warehouse.read_raw(item.entity_set)
    currencies = warehouse.read_raw("transactioncurrencies", columns=["transactioncurrencyid", "isocurrencycode"])
    context = TransformContext(
        owner_map=owner_map.lookup(),
        fallback_owner_id=owner_map.fallback_user_id,
        currencies=dict(zip(currencies["transactioncurrencyid"].str.lower(), currencies["isocurrencycode"], strict=True)),
    )
    result = transform_object(raw, object_map, context)
    warehouse.write_staged(item.name, result.staged)
    warehouse.replace_rows("staged.rejects", result.rejects, where="object = ?", params=[item.name])
    rejected_records = len(raw) - len(result.staged)
    return StageResult(item.name, len(raw), len(result.staged), rejected_records, len(result.rejects))
