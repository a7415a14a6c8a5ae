"""Extract assets: one `dynamics/<entity_set>` per Dataverse table, written to raw Parquet."""


import dagster as dg

from migration_pipeline.defs.resources import DynamicsResource, WarehouseResource
from migration_pipeline.steps.extract import extract_table
from migration_pipeline.steps.objects import OBJECTS, REFERENCE_TABLES


def extract_asset(logical_name: str, entity_set: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=["dynamics", entity_set],
        group_name="extract",
        kinds={"dynamics", "parquet"},
        description=f"Every {logical_name} row from the Dataverse Web API, as raw Parquet (`raw.{entity_set}` in DuckDB).",
    )
    def _extract(context: dg.AssetExecutionContext, dynamics: DynamicsResource, warehouse: WarehouseResource) -> dg.MaterializeResult:
        with dynamics.client() as client:
            result = extract_table(client, warehouse.warehouse(), logical_name, entity_set)
        context.log.info(f"{entity_set}: {result.rows} rows in {result.pages} pages")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": result.rows,
                "columns": result.columns,
                "pages": result.pages,
                "duration_s": round(result.seconds, 2),
            }
        )

    return _extract


EXTRACT_ASSETS = [extract_asset(item.logical_name, item.entity_set) for item in OBJECTS] + [
    extract_asset(logical_name, entity_set) for logical_name, entity_set in REFERENCE_TABLES
]


defs = dg.Definitions(assets=EXTRACT_ASSETS)
