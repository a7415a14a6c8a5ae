"""Asset checks on the loaded objects: the field-level diff, blocking downstream work on any difference."""


import asyncio

import dagster as dg

from migration_pipeline.defs.pipedrive.assets import PIPEDRIVE_POOL
from migration_pipeline.defs.resources import PipedriveResource, WarehouseResource
from migration_pipeline.steps.objects import OBJECTS, MigratedObject
from migration_pipeline.steps.verify import verify_object

SAMPLE_DIFFERENCES = 20


def field_diff_check(item: MigratedObject) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(["pipedrive", item.name]),
        name="field_diff",
        blocking=True,
        pool=PIPEDRIVE_POOL,
        description=f"Reads every {item.name} back from Pipedrive (list pages) and compares it field by field "
        "with the confirmed plan; any difference is an ERROR and stops downstream steps.",
    )
    def _check(pipedrive: PipedriveResource, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        async def run() -> dg.AssetCheckResult:
            async with pipedrive.client() as client:
                result = await verify_object(client, warehouse.warehouse(), item)
                tokens = client.usage.snapshot()["tokens"]
            differing = len(result.differences)
            return dg.AssetCheckResult(
                passed=result.clean,
                severity=dg.AssetCheckSeverity.ERROR,
                description=f"{differing} differences" if differing else "every field matches",
                metadata={
                    "differences": differing,
                    "tokens_spent": tokens,
                    "summary": dg.MetadataValue.md(result.summary.to_markdown(index=False)),
                    "first_differences": dg.MetadataValue.md(
                        result.differences.head(SAMPLE_DIFFERENCES).to_markdown(index=False) if differing else "none"
                    ),
                },
            )

        return asyncio.run(run())

    return _check


defs = dg.Definitions(asset_checks=[field_diff_check(item) for item in OBJECTS])
