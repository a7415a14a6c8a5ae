"""The walking skeleton in Dagster: accounts -> organizations, in process, against a fresh sandbox.

The plan is written and confirmed through the core steps (as `migrate plan` / `confirm` do),
then the `full_migration` job materializes every asset through real HTTP to both simulators.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest

from migration_pipeline.definitions import build_definitions
from migration_pipeline.pipedrive.client import run_sync
from migration_pipeline.sandbox.runtime import Sandbox
from migration_pipeline.settings import Settings
from migration_pipeline.steps.plan import confirm_plan, write_plan
from migration_pipeline.warehouse.catalog import Warehouse
from migration_pipeline_tests.conftest import settings_for

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def run_job(settings: Settings, name: str) -> dg.ExecuteInProcessResult:
    job = build_definitions(settings).resolve_job_def(name)
    return job.execute_in_process(run_config=QUIET, raise_on_error=False, instance=dg.DagsterInstance.ephemeral())


@pytest.fixture
def migrated(make_sandbox: Callable[..., Sandbox], tmp_path: Path) -> tuple[Sandbox, Settings, dg.ExecuteInProcessResult]:
    sandbox = make_sandbox(records=300, seed=7)
    settings = settings_for(sandbox, tmp_path)
    assert run_job(settings, "extract").success
    users = run_sync(settings, lambda client: client.users())
    write_plan(Warehouse(settings.migration_home), settings.migration_mappings_dir, users, settings.pipedrive_fallback_owner_email)
    confirm_plan(settings.migration_mappings_dir, confirmed_by="test")
    return sandbox, settings, run_job(settings, "full_migration")


def field_diff(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (check,) = [c for c in result.get_asset_check_evaluations()
                if c.check_name == "field_diff" and c.asset_key == dg.AssetKey(["pipedrive", "organizations"])]
    return check


def organization_metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    (event,) = [e for e in result.get_asset_materialization_events() if e.materialization.asset_key == dg.AssetKey(["pipedrive", "organizations"])]
    return {key: value.value for key, value in event.materialization.metadata.items()}


def test_every_account_becomes_an_organization_with_a_clean_diff(migrated: tuple[Sandbox, Settings, dg.ExecuteInProcessResult]) -> None:
    sandbox, settings, result = migrated
    assert result.success
    accounts = sandbox.data.dataverse.tables["accounts"]
    warehouse = Warehouse(settings.migration_home)
    idmap = warehouse.idmap("organizations")
    staged = set(warehouse.read_staged("organizations")["source_id"])
    assert set(accounts["accountid"]) <= staged  # every account, none rejected outright in this dataset
    assert set(idmap) == staged  # and the organizations the rules add (orphan contacts' placeholder, leads' companies)
    held = {str(o["id"]): o for o in sandbox.pipedrive_app.state.simulator.snapshot()["organizations"]}
    assert all(pipedrive_id in held for pipedrive_id in idmap.values())
    assert field_diff(result).passed
    assert organization_metadata(result)["created"] == len(staged)


def test_a_second_run_creates_nothing(migrated: tuple[Sandbox, Settings, dg.ExecuteInProcessResult]) -> None:
    sandbox, settings, _ = migrated
    before = len(sandbox.pipedrive_app.state.simulator.snapshot()["organizations"])
    again = run_job(settings, "full_migration")
    assert again.success
    assert organization_metadata(again)["created"] == 0
    assert len(sandbox.pipedrive_app.state.simulator.snapshot()["organizations"]) == before


def test_a_field_changed_in_pipedrive_fails_the_blocking_check_and_stops_downstream(
    migrated: tuple[Sandbox, Settings, dg.ExecuteInProcessResult],
) -> None:
    sandbox, settings, _ = migrated
    source_id, pipedrive_id = sorted(Warehouse(settings.migration_home).idmap("organizations").items())[0]
    sandbox.pipedrive_app.state.simulator.change_record("organizations", int(pipedrive_id), {"name": "Renamed behind our back"})

    result = run_job(settings, "full_migration")

    assert not result.success
    check = field_diff(result)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    materialized = {e.materialization.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "pipedrive/organizations" in materialized
    assert "reports/migration" not in materialized  # the downstream steps did not run
    assert "pipedrive/persons" not in materialized
    diff = Warehouse(settings.migration_home).query("SELECT source_id, field, actual FROM validation.field_diff")
    assert diff.values.tolist() == [[source_id, "name", "Renamed behind our back"]]
