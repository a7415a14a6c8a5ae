"""The `rollback` job: one op that calls `steps/rollback.rollback` and records what it did and spent."""

import asyncio
import time

import dagster as dg

from migration_pipeline.defs.pipedrive.assets import PIPEDRIVE_POOL
from migration_pipeline.defs.resources import PipedriveResource, WarehouseResource
from migration_pipeline.steps.accounting import record_usage
from migration_pipeline.steps.rollback import ROLLBACK_PREFIX, RollbackResult, rollback


class RollbackConfig(dg.Config):
    run: str | None = None  # the run to undo; every run when unset


@dg.op(pool=PIPEDRIVE_POOL, description="Delete what the migration created and restore what it changed, in reverse load "
       "order, from the audit trail; journaled and resumable.")
def undo_migration(context: dg.OpExecutionContext, config: RollbackConfig, pipedrive: PipedriveResource,
                   warehouse: WarehouseResource) -> dg.Output[dict]:
    async def main() -> tuple[RollbackResult, dict]:
        started = time.monotonic()
        async with pipedrive.client() as client:
            try:
                return await rollback(client, warehouse.warehouse(), config.run,
                                      rollback_id=f"{ROLLBACK_PREFIX}{context.run.run_id}"), client.usage.snapshot()
            finally:
                record_usage(warehouse.warehouse(), context.run.run_id, "rollback", client.usage.snapshot(),
                             time.monotonic() - started, {})

    result, usage = asyncio.run(main())
    summary = {"deleted": dict(result.deleted), "already_gone": dict(result.already_gone), "restored": dict(result.restored),
               "failed": result.failed, "tokens_spent": usage["tokens"], "requests": usage["requests"]}
    context.log.info(f"rollback: {sum(result.deleted.values())} deleted, {sum(result.restored.values())} restored, "
                     f"{usage['tokens']} tokens")
    return dg.Output(summary, metadata={"deleted": sum(result.deleted.values()), "restored": sum(result.restored.values()),
                                        "already_gone": sum(result.already_gone.values()), "failed": len(result.failed),
                                        "tokens_spent": usage["tokens"], "seconds": round(result.seconds, 2)})


@dg.job(name="rollback", description="Undo one run (config `run`), or every run: what it created deleted, what it changed "
        "restored, pre-existing records untouched. Shares the `pipedrive_api` pool with the loads; tokens spent are in the "
        "op's metadata.")
def rollback_job() -> None:
    undo_migration()


defs = dg.Definitions(jobs=[rollback_job])
