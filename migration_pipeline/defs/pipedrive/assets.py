"""Provision and load assets: `pipedrive/custom_fields`, then `pipedrive/<object>` (the ID map)."""


import asyncio

import dagster as dg

from migration_pipeline.defs.resources import PipedriveResource, WarehouseResource
from migration_pipeline.steps.load import load_object
from migration_pipeline.steps.objects import OBJECTS, MigratedObject
from migration_pipeline.steps.provision import provision_custom_fields, provision_pipelines

# Every Pipedrive writer shares this pool, so concurrent runs never double the request rate.
PIPEDRIVE_POOL = "pipedrive_api"


@dg.asset(
    key=["pipedrive", "custom_fields"],
    deps=[["staged", item.name] for item in OBJECTS],
    group_name="load",
    kinds={"pipedrive"},
    pool=PIPEDRIVE_POOL,
    description='The custom fields the plan needs (the "Dynamics ID" fields included), created or found in Pipedrive.',
)
def custom_fields(pipedrive: PipedriveResource, warehouse: WarehouseResource) -> dg.MaterializeResult:
    async def provision() -> dg.MaterializeResult:
        async with pipedrive.client() as client:
            fields = await provision_custom_fields(client, warehouse.warehouse(), warehouse.mappings_path)
            usage = client.usage.snapshot()
        return dg.MaterializeResult(
            metadata={
                "fields": dg.MetadataValue.md(fields[["object", "name", "field_type"]].to_markdown(index=False)),
                "tokens_spent": usage["tokens"],
            }
        )

    return asyncio.run(provision())


@dg.asset(
    key=["pipedrive", "pipelines"],
    deps=[["staged", "deals"]],
    group_name="load",
    kinds={"pipedrive", "duckdb"},
    pool=PIPEDRIVE_POOL,
    description="A pipeline per Dynamics sales process and its stages in order (stages.yaml), found by name or created; "
    "`idmap.stages` keys each stage by `<pipeline>/<stage>`.",
)
def pipelines(context: dg.AssetExecutionContext, pipedrive: PipedriveResource, warehouse: WarehouseResource) -> dg.MaterializeResult:
    async def provision() -> dg.MaterializeResult:
        async with pipedrive.client() as client:
            stages = await provision_pipelines(client, warehouse.warehouse(), warehouse.mappings_path, context.run.run_id)
            usage = client.usage.snapshot()
        return dg.MaterializeResult(metadata={"stages": len(stages), "tokens_spent": usage["tokens"]})

    return asyncio.run(provision())


def load_asset(item: MigratedObject, after: list[MigratedObject]) -> dg.AssetsDefinition:
    """`pipedrive/<object>`, after the objects it links to (`after`), so their ID maps are complete."""

    @dg.asset(
        key=["pipedrive", item.name],
        deps=[["staged", item.name], ["pipedrive", "custom_fields"], *(["pipedrive", earlier.name] for earlier in after),
              *([["pipedrive", "pipelines"]] if item.name == "deals" else [])],
        group_name="load",
        kinds={"pipedrive", "duckdb"},
        pool=PIPEDRIVE_POOL,
        description=f"Pipedrive {item.name} created from `staged.{item.name}`; the value is the ID map `idmap.{item.name}`.",
    )
    def _load(context: dg.AssetExecutionContext, pipedrive: PipedriveResource, warehouse: WarehouseResource) -> dg.MaterializeResult:
        async def load() -> dg.MaterializeResult:
            async with pipedrive.client() as client:
                result = await load_object(client, warehouse.warehouse(), warehouse.mappings_path, item, context.run.run_id)
                usage = client.usage.snapshot()
            if result.failed or result.in_doubt:
                context.log.warning(f"{item.name}: {result.failed} refused, {result.in_doubt} in doubt; see staged.rejects")
            return dg.MaterializeResult(
                metadata={
                    "dagster/row_count": result.already_loaded + result.linked_by_read_back + result.created,
                    "created": result.created,
                    "already_loaded": result.already_loaded,
                    "linked_by_read_back": result.linked_by_read_back,
                    "refused": result.failed,
                    "in_doubt": result.in_doubt,
                    "values_refused": result.values_refused,
                    "deferred_links": result.deferred_links,
                    "links_set": result.links_set,
                    "tokens_spent": usage["tokens"],
                    "requests": usage["requests"],
                    "duration_s": round(result.seconds, 2),
                }
            )

        return asyncio.run(load())

    return _load


LOAD_ASSETS = [load_asset(item, list(OBJECTS[:position])) for position, item in enumerate(OBJECTS)]


defs = dg.Definitions(assets=[custom_fields, pipelines, *LOAD_ASSETS])
