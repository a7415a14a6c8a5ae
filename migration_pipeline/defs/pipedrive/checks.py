"""Asset checks on every loaded object: the field-level diff (blocking) and the reconciliation.

Both come from one read of Pipedrive per object: the diff reads every loaded record back (list
pages), and the reconciliation adds up the counts from Dynamics to Pipedrive from what the diff
found. Each check also rewrites `reports/diff-<run>.md` and `.html` from the validation tables,
so the report is there when a difference stops the run, which is when it is needed.
"""


import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from migration_pipeline.defs.pipedrive.assets import LOAD_STEPS, PIPEDRIVE_POOL
from migration_pipeline.defs.resources import DynamicsResource, PipedriveResource, WarehouseResource
from migration_pipeline.steps.accounting import record_usage
from migration_pipeline.steps.reconcile import reconcile
from migration_pipeline.steps.report import write_diff_report
from migration_pipeline.steps.verify import ARCHIVE, VERIFIED, FileBodies, verify_object
from migration_pipeline.validation.diff import DiffResult

SAMPLE_DIFFERENCES = 20
FIELD_DIFF = "field_diff"
RECONCILIATION = "reconciliation"


def verification_checks(name: str) -> dg.AssetChecksDefinition:
    """`field_diff` and `reconciliation` on `pipedrive/<name>`."""
    key = dg.AssetKey(["pipedrive", name])
    reconciled = name != ARCHIVE  # archiving changes deals, it adds none: the deals' own check counts them

    @dg.multi_asset_check(
        name=f"verify_{name}",
        specs=[
            dg.AssetCheckSpec(FIELD_DIFF, asset=key, blocking=True,
                              description=f"Reads every loaded {name} record back from Pipedrive (list pages, bulk reads) and "
                              "compares it field by field with the confirmed plan; any difference is an ERROR and stops "
                              "the steps after it."),
            *([dg.AssetCheckSpec(RECONCILIATION, asset=key,
                                 description=f"Counts of {name} from Dynamics to Pipedrive (source, staged, merged, rejected, "
                                 "loaded, to load, present, duplicates) and whether they add up.")] if reconciled else []),
        ],
        pool=PIPEDRIVE_POOL,
    )
    def _checks(context: dg.AssetCheckExecutionContext, dynamics: DynamicsResource, pipedrive: PipedriveResource,
                warehouse: WarehouseResource) -> Iterator[dg.AssetCheckResult]:
        home = warehouse.warehouse()

        async def diff() -> tuple[DiffResult, dict[str, Any]]:
            started = time.monotonic()
            async with pipedrive.client() as client:
                try:
                    if name != "files":
                        return await verify_object(client, home, name), client.usage.snapshot()
                    with dynamics.client() as source:  # the checksum sample compares the bytes on both sides
                        bodies = FileBodies(source=lambda annotation_id: asyncio.to_thread(source.download_annotation_body, annotation_id),
                                            held=client.download_file)
                        return await verify_object(client, home, name, bodies), client.usage.snapshot()
                finally:  # what verifying spent counts against the day's budget like any load (`migrate status`)
                    record_usage(home, context.run.run_id, f"verify {key.to_user_string()}", client.usage.snapshot(),
                                 time.monotonic() - started)

        result, usage = asyncio.run(diff())
        tokens = usage["tokens"]
        counts = reconcile(home, [name])[0] if reconciled else None
        report = write_diff_report(home, context.run.run_id, datetime.now(UTC))
        differing = len(result.differences)
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name=FIELD_DIFF,
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
                "report": dg.MetadataValue.path(str(report.html)),
            },
        )
        if counts is None:
            return
        problems = counts.problems
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name=RECONCILIATION,
            passed=not problems,
            severity=dg.AssetCheckSeverity.ERROR,
            description="; ".join(problems) if problems else (
                "adds up" if counts.complete else f"adds up; {counts.to_load:,} staged records left to load"),
            metadata={
                **{field: value for field, value in vars(counts).items() if field != "object" and value is not None},
                "complete": counts.complete,
                "report": dg.MetadataValue.path(str(report.markdown)),
            },
        )

    return _checks


VERIFIED_STEPS = tuple(step.name for step in LOAD_STEPS if step.name in VERIFIED)

defs = dg.Definitions(asset_checks=[verification_checks(name) for name in VERIFIED_STEPS])
