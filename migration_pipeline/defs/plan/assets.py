"""The plan: `plan/workbook` (the proposed maps in the mappings dir) and its blocking `confirmed` check.

Materializing the workbook writes the proposal; a person then reviews it and runs `migrate
confirm`. The check fails, with ERROR severity, while the plan is unconfirmed, changed since
it was confirmed, or blocked (an owner with nowhere to go, an opportunity stage the stage map
does not know), and so stops every transform and load downstream of it in the same run. The
steps re-check the gate themselves, since a blocking check only guards the runs it is part of.
"""

import asyncio

import dagster as dg
import pandas as pd

from migration_pipeline.defs._meta import OWNERS
from migration_pipeline.defs.dynamics.assets import SCHEMA_KEY
from migration_pipeline.defs.resources import PipedriveResource, WarehouseResource
from migration_pipeline.errors import PlanNotConfirmed
from migration_pipeline.mapping.confirmation import require_confirmed
from migration_pipeline.steps.objects import OBJECTS
from migration_pipeline.steps.plan import PLAN_INPUT_TABLES, load_plan, open_questions, pipedrive_choice_options, write_plan

WORKBOOK_KEY = dg.AssetKey(["plan", "workbook"])


@dg.asset(
    key=WORKBOOK_KEY,
    deps=[SCHEMA_KEY, *(["dynamics", entity_set] for entity_set in PLAN_INPUT_TABLES)],
    group_name="plan",
    kinds={"yaml"},
    owners=OWNERS,
    description="The proposed migration plan in MIGRATION_MAPPINGS_DIR: a field map per object, the owner map "
    "(Dynamics owners to Pipedrive users by email), and the stage map (sales processes to pipelines). Files a "
    "person may have edited are kept. Nothing moves until `migrate confirm`.",
)
def workbook(context: dg.AssetExecutionContext, pipedrive: PipedriveResource, warehouse: WarehouseResource) -> dg.MaterializeResult:
    async def read_pipedrive() -> tuple[list[dict[str, object]], dict[str, dict[str, list[str]]]]:
        async with pipedrive.client() as client:
            return await client.users(), await pipedrive_choice_options(client)

    users, options = asyncio.run(read_pipedrive())
    result = write_plan(warehouse.warehouse(), warehouse.mappings_path, users, pipedrive.settings().pipedrive_fallback_owner_email, options)
    blocking, decisions = open_questions(result.plan)
    owners = pd.Series([owner.status for owner in result.plan.owner_map.owners]).value_counts()
    context.log.info(f"plan written: {len(blocking)} blocking, {len(decisions)} decisions to confirm")
    return dg.MaterializeResult(
        metadata={
            "mappings_dir": dg.MetadataValue.path(str(warehouse.mappings_path)),
            "files": dg.MetadataValue.md("\n".join(f"- `{path}`" for path in result.files)),
            "owners": dg.MetadataValue.md(owners.rename_axis("status").reset_index(name="owners").to_markdown(index=False)),
            "pipelines": len(result.plan.stage_map.pipelines),
            "blocking": dg.MetadataValue.md("\n".join(f"- {line}" for line in blocking) or "None."),
            "decisions": dg.MetadataValue.md("\n".join(f"- {line}" for line in decisions) or "None."),
        }
    )


@dg.asset_check(
    asset=WORKBOOK_KEY,
    name="confirmed",
    blocking=True,
    description="The plan is confirmed (`migrate confirm`), unchanged since, and nothing in it blocks (an unmatched owner "
    "with no fallback user, an unmapped stage). Blocking, ERROR: no record is transformed or loaded otherwise.",
)
def confirmed(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    try:
        record = require_confirmed(warehouse.mappings_path)
        blocking, _ = open_questions(load_plan(warehouse.mappings_path))
    except PlanNotConfirmed as error:
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR, description=str(error))
    if blocking:
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR, description="; ".join(blocking))
    return dg.AssetCheckResult(
        passed=True,
        metadata={"confirmed_by": record.confirmed_by, "confirmed_at": record.confirmed_at, "digest": record.digest[:12]},
    )


defs = dg.Definitions(assets=[workbook], asset_checks=[confirmed])
