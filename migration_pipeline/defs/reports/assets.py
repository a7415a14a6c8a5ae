"""Report assets: the migration report, published only when every blocking check upstream passed."""


from datetime import UTC, datetime

import dagster as dg

from migration_pipeline.defs._meta import OWNERS
from migration_pipeline.defs.pipedrive.assets import LOAD_STEPS
from migration_pipeline.defs.resources import WarehouseResource
from migration_pipeline.steps.report import object_counts, write_migration_report


@dg.asset(
    key=["reports", "migration"],
    deps=[["pipedrive", step.name] for step in LOAD_STEPS],
    group_name="reports",
    kinds={"duckdb", "markdown"},
    owners=OWNERS,
    description="The verified migration report (reports/migration-<run>.md): counts per object, rejects and the "
    "diff summary, for the sign-off. Not produced while any field diff fails (the blocking checks upstream stop it).",
)
def migration_report(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    home = warehouse.warehouse()
    path = write_migration_report(home, context.run.run_id, datetime.now(UTC))
    diff = home.reports_dir / f"diff-{context.run.run_id}.html"  # written by this run's checks, when they ran
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(path)),
        "records": dg.MetadataValue.md(object_counts(home).to_markdown(index=False)),
        **({"diff_report": dg.MetadataValue.path(str(diff))} if diff.exists() else {}),
    })


defs = dg.Definitions(assets=[migration_report])
