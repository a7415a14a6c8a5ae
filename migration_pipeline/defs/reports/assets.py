"""Report assets: the migration report, published only when every blocking check upstream passed."""


from datetime import UTC, datetime

import dagster as dg

from migration_pipeline.defs.pipedrive.assets import LOAD_STEPS
from migration_pipeline.defs.resources import WarehouseResource
from migration_pipeline.steps.report import write_migration_report


@dg.asset(
    key=["reports", "migration"],
    deps=[["pipedrive", step.name] for step in LOAD_STEPS],
    group_name="reports",
    kinds={"duckdb"},
    description="The verified migration report (reports/migration-<run>.md): counts per object, rejects and the "
    "diff summary. Not produced while any field diff fails.",
)
def migration_report(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    path = write_migration_report(warehouse.warehouse(), context.run.run_id, datetime.now(UTC))
    return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(path))})


defs = dg.Definitions(assets=[migration_report])
