"""Transform assets: `staged/<object>`, the Pipedrive payloads and their rejects."""


import dagster as dg

from migration_pipeline.defs.plan.assets import WORKBOOK_KEY
from migration_pipeline.defs.resources import WarehouseResource
from migration_pipeline.steps.objects import OBJECTS, MigratedObject
from migration_pipeline.steps.transform import stage_object


def staged_asset(item: MigratedObject) -> dg.AssetsDefinition:
    @dg.asset(
        key=["staged", item.name],
        deps=[["dynamics", item.entity_set], WORKBOOK_KEY],
        group_name="transform",
        kinds={"duckdb", "parquet"},
        description=f"Pipedrive {item.name} payloads from raw {item.entity_set} under the confirmed plan; "
        "what cannot be carried is in `staged.rejects`.",
    )
    def _stage(warehouse: WarehouseResource) -> dg.MaterializeResult:
        result = stage_object(warehouse.warehouse(), warehouse.mappings_path, item)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": result.staged,
                "source_rows": result.source_rows,
                "rejected_records": result.rejected_records,
                "rejected_fields": result.rejected_fields,
            }
        )

    return _stage


defs = dg.Definitions(assets=[staged_asset(item) for item in OBJECTS])
