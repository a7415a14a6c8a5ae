"""The jobs people launch: the sample and the full migration (and, as they land, delta and rollback)."""


import dagster as dg

from migration_pipeline.defs.pipedrive.assets import LOAD_STEPS

# The plan's blocking `confirmed` check runs first in every job that moves records: it stops them all.
PLAN_CONFIRMED = dg.AssetSelection.checks(dg.AssetCheckKey(dg.AssetKey(["plan", "workbook"]), "confirmed"))

FULL_MIGRATION = dg.define_asset_job(
    "full_migration",
    selection=dg.AssetSelection.groups("extract", "transform", "load", "reports") | PLAN_CONFIRMED,
    description="Extract, transform, provision, load, verify (blocking field diff) and report, once the plan's "
    "blocking `confirmed` check passes: resumes where a previous run stopped.",
)

SAMPLE_MIGRATION = dg.define_asset_job(
    "sample_migration",
    selection=dg.AssetSelection.groups("transform", "sample", "load", "reports") | PLAN_CONFIRMED,
    # The same load steps as the full migration, each taking only the sampled records.
    config={"ops": {dg.AssetKey(["pipedrive", step.name]).to_python_identifier(): {"config": {"sample_only": True}}
                    for step in LOAD_STEPS}},
    description="Transform, choose the sample (`plan/sample`, config `size`), provision, load only the sampled records, "
    "verify them (blocking field diff) and report, once the plan's blocking `confirmed` check passes. Works from the "
    "extract `migrate plan` made; a later `full_migration` loads the rest, creating none of the sampled records again.",
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
    selection=dg.AssetSelection.checks_for_assets(*(["pipedrive", step.name] for step in LOAD_STEPS)),
    description="The field-level diff and the reconciliation of everything loaded, without loading anything.",
)

DELTA_MIGRATION = dg.define_asset_job(
    "delta_migration",
    selection=dg.AssetSelection.groups("delta", "transform", "load", "reports") | PLAN_CONFIRMED,
    description="One delta pickup (`dynamics/changes`: what changed in Dynamics since the last cursor, merged into the raw "
    "tables), then the same transform, load (new records created, changed ones updated in place through the ID map, "
    "deletes by the rule in steps/delta.py), verify and report as the full migration.",
)

defs = dg.Definitions(jobs=[FULL_MIGRATION, SAMPLE_MIGRATION, PLAN, EXTRACT, VERIFY, DELTA_MIGRATION])
