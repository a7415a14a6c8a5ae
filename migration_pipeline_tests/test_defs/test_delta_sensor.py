"""`dynamics_delta_sensor` with `build_sensor_context`, against the sandbox: a run requested (cursor advanced) when
Dynamics has changes, none when it has none, and the cursor surviving a restart (a new context given the old cursor)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import dagster as dg
from click.testing import CliRunner

from migration_pipeline.cli import main
from migration_pipeline.defs.delta.sensors import dynamics_delta_sensor
from migration_pipeline.defs.resources import resources_from
from migration_pipeline.dynamics.client import DataverseClient
from migration_pipeline.sandbox.runtime import Sandbox
from migration_pipeline.steps.delta import pickup_changes
from migration_pipeline.warehouse.catalog import Warehouse
from migration_pipeline_tests.conftest import settings_for


def test_the_sensor_requests_a_run_only_when_dynamics_changed_and_keeps_its_cursor(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(records=120, seed=11)
    settings = settings_for(sandbox, tmp_path)
    dataverse = sandbox.dataverse_app.state.simulator
    resources = {name: resource for name, resource in resources_from(settings).items() if name != "pipedrive"}

    def tick(cursor: str | None) -> dg.SensorResult | dg.SkipReason:
        with dg.build_sensor_context(cursor=cursor, resources=resources) as context:
            return dynamics_delta_sensor(context)

    # Nothing extracted: nothing to ask.
    assert isinstance(tick(None), dg.SkipReason)
    assert CliRunner().invoke(main, ["plan"], obj={"settings": settings}).exit_code == 0

    # Extracted, nothing changed since: no run.
    idle = tick(None)
    assert isinstance(idle, dg.SkipReason) and "No changes" in (idle.skip_message or "")

    # A change (one watermark table, one change-tracking table): a run with a run key, and the cursor advanced.
    contact = dataverse.store.table("contacts").frame["contactid"].iloc[0]
    dataverse.update_row("contacts", contact, {"lastname": "Sensed"})
    project = dataverse.store.table("cr7f2_projects").frame.iloc[0, 0]
    dataverse.update_row("cr7f2_projects", project, {})
    first = tick(None)
    assert isinstance(first, dg.SensorResult) and len(first.run_requests or []) == 1
    request = first.run_requests[0]  # type: ignore[index]
    assert request.run_key and request.run_key.startswith("delta-")
    assert set(request.tags["delta/tables"].split(",")) == {"contacts", "cr7f2_projects"}
    cursor = first.cursor
    assert cursor and set(json.loads(cursor)) >= {"contacts", "cr7f2_projects", "accounts"}

    # A restart: a new context given the stored cursor asks for no second run while the first has not picked up.
    again = tick(cursor)
    assert not (isinstance(again, dg.SensorResult) and again.run_requests)
    assert (again.cursor if isinstance(again, dg.SensorResult) else cursor) == cursor

    # The run picks the changes up (the pickup advances the tables' own cursors): the next tick finds nothing.
    with DataverseClient.from_settings(settings, backoff=0.01) as client:
        picked = {r.entity_set: r.changed for r in pickup_changes(client, Warehouse(settings.migration_home)) if r.changed}
    assert picked == {"contacts": 1, "cr7f2_projects": 1}
    after = tick(cursor)
    assert isinstance(after, dg.SkipReason) and "No changes" in (after.skip_message or "")

    # A new change after that: a new run, with a new run key.
    dataverse.update_row("contacts", contact, {"lastname": "Sensed Again"})
    second = tick(cursor)
    assert isinstance(second, dg.SensorResult) and second.run_requests
    assert second.run_requests[0].run_key != request.run_key and second.cursor != cursor
