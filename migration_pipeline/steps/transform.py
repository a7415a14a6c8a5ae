"""Transform: raw Parquet -> staged payload tables for every object, plus rejects and merges, under the confirmed plan.

Every object is staged in one pass (`mapping/rules/run.py`), because later objects point at
earlier ones: a person at its organization, an activity at its deal. Organizations take their
fields from the confirmed workbook; every object's structure (links, emails, stages, bundles...)
comes from its rules, and the custom fields a person mapped in its workbook are added on top.
What is written:

- `staged/<object>/*.parquet` (`staged.<object>`), and each object's extra tables as
  `staged/<object>_<extra>` (`organizations_relationships`, `activities_participants`,
  `files_manual_uploads`...);
- `staged.rejects` (object, source_id, field, value, reason, rule; field `*` for a whole record)
  and `staged.merged` (object, source_id, into_object, into_source_id, rule).

Every source record ends in exactly one of them: staged, merged by a named rule, or rejected.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from migration_pipeline.mapping.confirmation import require_confirmed
from migration_pipeline.mapping.rules.common import ObjectStage, RuleContext, base_currency_of
from migration_pipeline.mapping.rules.organizations import stage_organizations
from migration_pipeline.mapping.rules.run import OBJECTS as STAGED_OBJECTS  # noqa: F401 (the assets' list)
from migration_pipeline.mapping.rules.run import all_merged, all_rejects, tidy, transform_all
from migration_pipeline.mapping.spec import ObjectMap
from migration_pipeline.mapping.transform import TransformContext, transform_object
from migration_pipeline.steps.objects import WORKBOOK_OBJECTS
from migration_pipeline.steps.plan import Plan, load_plan
from migration_pipeline.warehouse.catalog import Warehouse

log = logging.getLogger(__name__)

# The raw tables the rules read (custom entities' tables come from the plan).
RULE_INPUTS = (
    "accounts", "contacts", "opportunities", "leads", "phonecalls", "emails", "tasks", "appointments", "activitypointers",
    "activityparties", "products", "productassociations", "pricelevels", "productpricelevels", "opportunityproducts",
    "annotations", "transactioncurrencies", "organizations",
)


@dataclass
class StageResult:
    object: str
    staged: int
    rejected_records: int
    rejected_fields: int
    merged: int
    extra: dict[str, int]


def stage_everything(warehouse: Warehouse, mappings_dir: Path) -> dict[str, StageResult]:
    """Stage every object under the confirmed plan; returns what each object came to."""
    require_confirmed(mappings_dir)
    plan = load_plan(mappings_dir)
    custom = [entity for entity in plan.custom_entities.entities if entity.target_object != "none"]
    names = [*RULE_INPUTS, *(e.entity_set for e in custom), *(e.intersect_entity_set for e in custom if e.intersect_entity_set)]
    raw = {name: warehouse.read_raw(name) for name in dict.fromkeys(names) if warehouse.raw_path(name).exists()}
    stages = transform_all(raw, rule_context(plan, raw), organizations_stage(plan, raw), custom)
    for item in WORKBOOK_OBJECTS:
        if item.name != "organizations" and item.name in stages and item.entity_set in raw:
            stages[item.name] = with_workbook_fields(stages[item.name], raw[item.entity_set], plan.object_maps[item.name],
                                                     transform_context(plan, raw))
    results: dict[str, StageResult] = {}
    for name in STAGED_OBJECTS:
        stage = stages[name]
        warehouse.write_staged(name, stage.staged)
        for extra, frame in stage.extra.items():
            warehouse.write_staged(f"{name}_{extra}", frame)
        whole = stage.rejects["field"] == "*"
        results[name] = StageResult(name, len(stage.staged), int(whole.sum()), int((~whole).sum()), len(stage.merged),
                                    {extra: len(frame) for extra, frame in stage.extra.items()})
        log.info("staged %s: %d rows, %d records and %d values rejected, %d merged", name, len(stage.staged),
                 results[name].rejected_records, results[name].rejected_fields, len(stage.merged))
    # Rejects the loader recorded (a refused record, a value with no Pipedrive option) stay: it does not repeat them.
    warehouse.replace_rows("staged.rejects", all_rejects(stages), where="rule NOT IN ('load', 'option')")
    warehouse.replace_rows("staged.merged", all_merged(stages))
    return results


def transform_context(plan: Plan, raw: dict[str, pd.DataFrame]) -> TransformContext:
    """What the workbook engine needs: the owner map and the currencies' ISO codes."""
    currencies = raw["transactioncurrencies"]
    return TransformContext(
        owner_map=plan.owner_map.lookup(),
        fallback_owner_id=plan.owner_map.fallback_user_id,
        currencies=dict(zip(currencies["transactioncurrencyid"].str.lower(), currencies["isocurrencycode"], strict=True)),
    )


def rule_context(plan: Plan, raw: dict[str, pd.DataFrame]) -> RuleContext:
    return RuleContext(
        owners=plan.owner_map.lookup(),
        fallback_owner_id=plan.owner_map.fallback_user_id,
        stage_map=plan.stage_map,
        base_currency=base_currency_of(raw["transactioncurrencies"], raw.get("organizations")),
    )


def with_workbook_fields(stage: ObjectStage, raw: pd.DataFrame, object_map: ObjectMap, context: TransformContext) -> ObjectStage:
    """An object's rules, plus the custom fields its confirmed workbook adds: the org's own columns (`cr7f2_...`).

    The rules carry the structure and the standard fields; every column a person mapped to a
    custom field that the rules do not fill is carried by the workbook engine and joined by id.
    """
    present = set(stage.staged.columns)
    entries = [e for e in object_map.carried_fields if e.custom_field is not None and e.destination not in present]
    if not entries or stage.staged.empty:
        return stage
    carried = transform_object(raw, object_map.model_copy(update={"fields": entries}), context)
    staged = tidy(stage.staged.merge(carried.staged[["source_id", *(e.destination for e in entries)]], on="source_id", how="left"))
    own = carried.rejects[carried.rejects["source_id"].isin(set(staged["source_id"]))]
    return ObjectStage(stage.object, staged, pd.concat([stage.rejects, own], ignore_index=True), stage.merged, stage.extra)


def organizations_stage(plan: Plan, raw: dict[str, pd.DataFrame]) -> ObjectStage:
    return stage_organizations(raw["accounts"], plan.object_maps["organizations"], transform_context(plan, raw))
