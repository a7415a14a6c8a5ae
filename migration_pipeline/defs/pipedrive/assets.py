"""Provision and load assets: `pipedrive/custom_fields`, `pipedrive/pipelines`, `pipedrive/lead_labels`, then
`pipedrive/<object>` in load order (each one's value is its ID map).

Every step's Pipedrive usage (requests, tokens per operation, 429s, retries) is recorded in
`audit.runs` and shown as the step's metadata, even when the step stops on a spent budget.
"""


import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from pydantic import Field

from migration_pipeline.defs._meta import OWNERS
from migration_pipeline.defs.resources import DynamicsResource, PipedriveResource, WarehouseResource
from migration_pipeline.defs.sample.assets import SAMPLE_KEY
from migration_pipeline.pipedrive.client import PipedriveClient
from migration_pipeline.steps.accounting import record_usage, usage_markdown
from migration_pipeline.steps.existing import MatchRule
from migration_pipeline.steps.load import load_step
from migration_pipeline.steps.objects import FIELD_OBJECTS
from migration_pipeline.steps.provision import provision_custom_fields, provision_lead_labels, provision_pipelines
from migration_pipeline.steps.sample import sample_scope

# Every Pipedrive writer shares this pool, so concurrent runs never double the request rate.
PIPEDRIVE_POOL = "pipedrive_api"


@dataclass
class StepUsage:
    """What a step tells `audit.runs` besides the client's usage: its counts, and after the step, the usage itself."""

    counts: dict[str, int] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        return {"tokens_spent": self.usage["tokens"], "requests": self.usage["requests"],
                "rate_limited": self.usage["rate_limited"], "usage": dg.MetadataValue.md(usage_markdown(self.usage))}


@asynccontextmanager
async def accounted(context: dg.AssetExecutionContext, pipedrive: PipedriveResource,
                    warehouse: WarehouseResource) -> AsyncIterator[tuple[PipedriveClient, StepUsage]]:
    """A Pipedrive client for one step; what it spent goes to `audit.runs` however the step ends."""
    started, step = time.monotonic(), StepUsage()
    async with pipedrive.client() as client:
        try:
            yield client, step
        finally:
            step.usage = client.usage.snapshot()
            record_usage(warehouse.warehouse(), context.run.run_id, context.asset_key.to_user_string(), step.usage,
                         time.monotonic() - started, step.counts)


@dg.asset(
    key=["pipedrive", "custom_fields"],
    deps=[["staged", item.name] for item in FIELD_OBJECTS],
    group_name="load",
    kinds={"pipedrive"},
    owners=OWNERS,
    pool=PIPEDRIVE_POOL,
    description='The custom fields the plan needs (the "Dynamics ID" fields included), created or found in Pipedrive, '
    "before any record is loaded: the loads write into them and find their own records again by Dynamics ID.",
)
def custom_fields(context: dg.AssetExecutionContext, pipedrive: PipedriveResource, warehouse: WarehouseResource) -> dg.MaterializeResult:
    async def provision() -> dg.MaterializeResult:
        async with accounted(context, pipedrive, warehouse) as (client, step):
            fields = await provision_custom_fields(client, warehouse.warehouse(), warehouse.mappings_path)
            step.counts = {"fields": len(fields)}
        return dg.MaterializeResult(
            metadata={"dagster/row_count": len(fields), "fields": dg.MetadataValue.md(fields[["object", "name", "field_type"]].to_markdown(index=False)), **step.metadata()}
        )

    return asyncio.run(provision())


@dg.asset(
    key=["pipedrive", "pipelines"],
    deps=[["staged", "deals"]],
    group_name="load",
    kinds={"pipedrive", "duckdb"},
    owners=OWNERS,
    pool=PIPEDRIVE_POOL,
    description="A pipeline per Dynamics sales process and its stages in order (stages.yaml), found by name or created; "
    "`idmap.stages` keys each stage by `<pipeline>/<stage>`.",
)
def pipelines(context: dg.AssetExecutionContext, pipedrive: PipedriveResource, warehouse: WarehouseResource) -> dg.MaterializeResult:
    async def provision() -> dg.MaterializeResult:
        async with accounted(context, pipedrive, warehouse) as (client, step):
            stages = await provision_pipelines(client, warehouse.warehouse(), warehouse.mappings_path, context.run.run_id)
            step.counts = {"stages": len(stages)}
        return dg.MaterializeResult(metadata={"dagster/row_count": len(stages), "stages": len(stages), **step.metadata()})

    return asyncio.run(provision())


@dg.asset(
    key=["pipedrive", "lead_labels"],
    deps=[["staged", "leads"]],
    group_name="load",
    kinds={"pipedrive", "duckdb"},
    owners=OWNERS,
    pool=PIPEDRIVE_POOL,
    description='The lead labels staged leads carry ("Disqualified (Dynamics)"), found by name or created; '
    "`idmap.lead_labels` keys each by its name.",
)
def lead_labels(context: dg.AssetExecutionContext, pipedrive: PipedriveResource, warehouse: WarehouseResource) -> dg.MaterializeResult:
    async def provision() -> dg.MaterializeResult:
        async with accounted(context, pipedrive, warehouse) as (client, step):
            labels = await provision_lead_labels(client, warehouse.warehouse(), context.run.run_id)
            step.counts = {"labels": len(labels)}
        return dg.MaterializeResult(metadata={"dagster/row_count": len(labels), "labels": len(labels), **step.metadata()})

    return asyncio.run(provision())


@dataclass(frozen=True)
class LoadStep:
    """One `pipedrive/<name>` asset: the staged table it loads, what must be in Pipedrive first, and how it is loaded."""

    name: str
    staged: str
    after: tuple[str, ...]
    description: str


# In load order (DESIGN.md): every step's `after` names steps above it.
LOAD_STEPS: tuple[LoadStep, ...] = (
    LoadStep("organizations", "organizations", ("custom_fields",), "Pipedrive organizations from accounts (and the organizations the rules add)."),
    LoadStep("organizations_relationships", "organizations", ("organizations",),
             "Parent organizations (v1 organization relationships) from the accounts' parent account."),
    LoadStep("persons", "persons", ("custom_fields", "organizations"), "Pipedrive persons from contacts (and leads' people)."),
    LoadStep("products", "products", ("custom_fields",), "Pipedrive products from products (and write-in products)."),
    LoadStep("deals", "deals", ("custom_fields", "pipelines", "organizations", "persons"), "Pipedrive deals from opportunities."),
    LoadStep("deal_products", "deal_products", ("deals", "products"), "Deal products from opportunity products, 100 lines per bulk call."),
    LoadStep("leads", "leads", ("custom_fields", "lead_labels", "organizations", "persons"), "Pipedrive leads from open and disqualified leads."),
    LoadStep("activities", "activities", ("organizations", "persons", "deals", "leads"), "Activities (calls, emails, tasks, appointments) with participants."),
    LoadStep("notes", "notes", ("organizations", "persons", "deals", "leads"), "Notes from annotations, on their parent."),
    LoadStep("files", "files", ("organizations", "persons", "deals", "leads"),
             "Files attached to annotations: each body fetched from Dynamics, uploaded onto its parent."),
    LoadStep("deal_archive", "deals", ("deals", "deal_products", "activities", "notes", "files"),
             "Closed (won or lost) deals archived, last: archived deals no longer count against the plan's record cap "
             "and can no longer be edited."),
)


class LoadConfig(dg.Config):
    """How much of the staged table a load step takes (the `sample_migration` job sets `sample_only`)."""

    sample_only: bool = Field(default=False, description="Load only the records of plan.sample (the sample migration).")


def load_asset(step: LoadStep) -> dg.AssetsDefinition:
    """`pipedrive/<name>`, after the steps whose records it links to (`after`), so their ID maps are complete."""

    @dg.asset(
        key=["pipedrive", step.name],
        deps=[["staged", step.staged], *(["pipedrive", earlier] for earlier in step.after), SAMPLE_KEY],
        group_name="load",
        kinds={"pipedrive", "duckdb"},
        owners=OWNERS,
        pool=PIPEDRIVE_POOL,
        description=f"{step.description} The value is the ID map `idmap.{step.name}` (row count: records in Pipedrive); "
        "created, already loaded, refused and in-doubt counts and the tokens spent are in the metadata.",
    )
    def _load(context: dg.AssetExecutionContext, config: LoadConfig, dynamics: DynamicsResource, pipedrive: PipedriveResource,
              warehouse: WarehouseResource) -> dg.MaterializeResult:
        scope = sample_scope(warehouse.warehouse(), step.name) if config.sample_only else None

        async def load() -> dg.MaterializeResult:
            async with accounted(context, pipedrive, warehouse) as (client, accounting):
                with dynamics.client() as source:
                    result = await load_step(step.name, client, source, warehouse.warehouse(), warehouse.mappings_path, context.run.run_id,
                                             MatchRule.from_settings(warehouse.settings()), scope)
                counts = {
                    "created": result.created,
                    "already_loaded": result.already_loaded,
                    "linked_by_read_back": result.linked_by_read_back,
                    "linked_existing": result.linked_existing,
                    "refused": result.failed,
                    "in_doubt": result.in_doubt,
                    "resent": result.resent,
                    "values_refused": result.values_refused,
                    "deferred_links": result.deferred_links,
                    "links_set": result.links_set,
                    "deleted": result.deleted,
                }
                accounting.counts = counts
            if result.failed or result.in_doubt:
                context.log.warning(f"{step.name}: {result.failed} refused, {result.in_doubt} in doubt; see staged.rejects")
            loaded = result.already_loaded + result.linked_by_read_back + result.linked_existing + result.created
            return dg.MaterializeResult(
                metadata={"dagster/row_count": loaded, **counts, **accounting.metadata(), "duration_s": round(result.seconds, 2),
                          "scope": "sample" if config.sample_only else "everything staged"}
            )

        return asyncio.run(load())

    return _load


LOAD_ASSETS = [load_asset(step) for step in LOAD_STEPS]


defs = dg.Definitions(assets=[custom_fields, pipelines, lead_labels, *LOAD_ASSETS])
