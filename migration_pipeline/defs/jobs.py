"""The jobs people launch: the full migration (and, as they land, sample, delta and rollback)."""


import dagster as dg

from migration_pipeline.steps.objects import OBJECTS

FULL_MIGRATION = dg.define_asset_job(
    "full_migration",
    selection=dg.AssetSelection.groups("extract", "transform", "load", "reports"),
    description="Extract, transform, provision, load, verify (blocking field diff) and report: resumes where a "
    "previous run stopped.",
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

defs = dg.Definitions(jobs=[FULL_MIGRATION, EXTRACT, VERIFY])
