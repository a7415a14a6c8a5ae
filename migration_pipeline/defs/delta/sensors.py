"""`dynamics_delta_sensor`: asks Dataverse whether anything changed, and requests a `delta_migration` run when it did.

The cursor is JSON: per extracted table, the position (delta link or `modifiedon` watermark)
from which a run was last requested. A tick reads the positions the last pickup left
(`raw/<entity_set>/_cursor.json`), asks Dataverse for one changed row after each (a page of
one row per table), and requests a run whose run key is derived from those positions: a tick
re-evaluated before the run has advanced them asks for the same run key, so never a second run.
`delta_cutover_schedule` drives the same pickup every 15 minutes through a cutover window.
"""

import hashlib
import json

import dagster as dg

from migration_pipeline.defs.resources import DynamicsResource, WarehouseResource
from migration_pipeline.steps.delta import changed_since, positions

DELTA_JOB = "delta_migration"


def run_key(where: dict[str, str]) -> str:
    return "delta-" + hashlib.sha256(json.dumps(where, sort_keys=True).encode()).hexdigest()[:16]


@dg.sensor(
    name="dynamics_delta_sensor",
    job_name=DELTA_JOB,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Requests a delta_migration run when Dataverse reports changes since the last pickup (cursor: per-table "
    "delta link or modifiedon watermark; the run key derives from it, so a re-evaluated tick never launches a second run). "
    "Off by default: turn it on once the full migration has run.",
)
def dynamics_delta_sensor(context: dg.SensorEvaluationContext, dynamics: DynamicsResource,
                          warehouse: WarehouseResource) -> dg.SensorResult | dg.SkipReason:
    requested: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    where = positions(warehouse.warehouse())
    if not where:
        return dg.SkipReason("Nothing extracted yet: a delta starts from a full migration.")
    with dynamics.client() as client:
        changed = changed_since(client, warehouse.warehouse(), where)
    if not changed:
        return dg.SkipReason(f"No changes in Dynamics since the last pickup ({len(where)} tables asked).")
    cursor = json.dumps(where, sort_keys=True)
    if where == requested:
        return dg.SensorResult(skip_reason=dg.SkipReason(
            f"A run is already requested for these changes ({', '.join(changed)}); waiting for it to pick them up."), cursor=cursor)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=run_key(where), tags={"delta/tables": ",".join(changed)[:200]})],
        cursor=cursor,
    )


delta_cutover_schedule = dg.ScheduleDefinition(
    name="delta_cutover_schedule",
    job_name=DELTA_JOB,
    cron_schedule="*/15 * * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="A delta pickup every 15 minutes: turn on for the 24 to 48 hour cutover window, off at the switch.",
)

defs = dg.Definitions(sensors=[dynamics_delta_sensor], schedules=[delta_cutover_schedule])
