"""The jobs people launch: the full migration (and, as they land, sample, delta and rollback)."""


import dagster as dg

from migration_pipeline.steps.objects import OBJECTS

# The plan's blocking `confirmed` check runs first in every job that moves records: it stops them all.
PLAN_CONFIRMED = dg.AssetSelection.checks(dg.AssetCheckKey(dg.AssetKey(["plan", "workbook"]), "confirmed"))

FULL_MIGRATION = dg.define_asset_job(
    "full_migration",
    selection=dg.AssetSelection.groups("extract", "transform", "load", "reports") | PLAN_CONFIRMED,
    description="Extract, transform, provision, load, verify (blocking field diff) and report, once the plan's "
    "blocking `confirmed` check passes: resumes where a previous run stopped.",
)

PLAN = dg.define_asset_job(
    "plan",
    selection=dg.AssetSelection.groups("extract", "plan") - PLAN_CONFIRMED,
    description="Extract, then write the proposed plan (field, owner and stage maps) for a person to review and confirm.",
)

EXTRACT = dg.define_asset_job(
    "extract",
    selection=dg.AssetSelection.groups("extract"),
    description="Extract every Dataverse table in scope to raw Parquet (what `migrate plan` works from).",
)

VERIFY = dg.define_asset_job(
    "verify",
    selection=dg.AssetSelection.checks_for_assets(*(["pipedrive", item.name] for item in OBJECTS)),
    description="The field-level diff of everything loaded, without loading anything.",
)

defs = dg.Definitions(jobs=[FULL_MIGRATION, PLAN, EXTRACT, VERIFY])
