"""The delta pickup asset: what changed in Dynamics since the last extract or pickup, merged into the raw tables.

The transform downstream (`staged/*`) restages from those tables, and each load step updates
the changed records in place and applies the delete rule (`steps/delta.py`).
"""

import dagster as dg

from migration_pipeline.defs._meta import OWNERS
from migration_pipeline.defs.resources import DynamicsResource, WarehouseResource
from migration_pipeline.steps.delta import pickup_changes

CHANGES_KEY = dg.AssetKey(["dynamics", "changes"])


class PickupConfig(dg.Config):
    since: str | None = None  # an ISO timestamp: read every table by `modifiedon` from then, whatever its cursor


@dg.asset(
    key=CHANGES_KEY,
    group_name="delta",
    kinds={"dynamics", "parquet"},
    owners=OWNERS,
    description="Changes since the last cursor (change tracking where the table tracks changes, a modifiedon watermark "
    "otherwise), merged into the raw tables so the transform and load after it carry them to Pipedrive; per-table "
    "changed and deleted counts (row count: changed plus deleted rows).",
)
def changes(context: dg.AssetExecutionContext, config: PickupConfig, dynamics: DynamicsResource,
            warehouse: WarehouseResource) -> dg.MaterializeResult:
    with dynamics.client() as client:
        results = pickup_changes(client, warehouse.warehouse(), since=config.since)
    touched = [r for r in results if r.changed or r.deleted]
    table = "\n".join(["| table | read | changed | deleted |", "|---|---|---|---|",
                       *(f"| {r.entity_set} | {r.mode} | {r.changed} | {r.deleted} |" for r in touched)])
    context.log.info(f"delta: {sum(r.changed for r in results)} changed, {sum(r.deleted for r in results)} deleted "
                     f"over {len(touched)} of {len(results)} tables")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": sum(r.changed + r.deleted for r in results),
        "changed": sum(r.changed for r in results),
        "deleted": sum(r.deleted for r in results),
        "tables_changed": len(touched),
        "expired_tokens": sum(1 for r in results if r.mode == "full" and r.cursor and str(r.cursor).startswith("http")),
        "changes": dg.MetadataValue.md(table),
    })


defs = dg.Definitions(assets=[changes])
