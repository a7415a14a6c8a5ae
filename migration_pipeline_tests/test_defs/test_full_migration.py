"""The full migration in Dagster, in process, against a fresh sandbox: every object, every link.

The plan is written and confirmed through the core steps (as `migrate plan` / `confirm` do),
then the `full_migration` job materializes every asset through real HTTP to both simulators.
What Pipedrive holds afterwards is read from the simulator's own store, not through the client.
"""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest

from migration_pipeline.definitions import build_definitions
from migration_pipeline.defs.pipedrive.assets import LOAD_STEPS
from migration_pipeline.pipedrive.client import run_sync
from migration_pipeline.sandbox.runtime import Sandbox, SandboxConfig
from migration_pipeline.settings import Settings
from migration_pipeline.steps.plan import confirm_plan, write_plan
from migration_pipeline.warehouse.catalog import Warehouse
from migration_pipeline_tests.conftest import settings_for

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def run_job(settings: Settings, name: str) -> dg.ExecuteInProcessResult:
    job = build_definitions(settings).resolve_job_def(name)
    return job.execute_in_process(run_config=QUIET, raise_on_error=False, instance=dg.DagsterInstance.ephemeral())


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, Settings, dg.ExecuteInProcessResult]]:
    """One migration the tests below look at in turn (the last one changes Pipedrive, so it comes last)."""
    with Sandbox(SandboxConfig(records=300, seed=7)) as sandbox:
        settings = settings_for(sandbox, tmp_path_factory.mktemp("home"))
        assert run_job(settings, "extract").success
        users = run_sync(settings, lambda client: client.users())
        write_plan(Warehouse(settings.migration_home), settings.migration_mappings_dir, users, settings.pipedrive_fallback_owner_email)
        confirm_plan(settings.migration_mappings_dir, confirmed_by="test")
        yield sandbox, settings, run_job(settings, "full_migration")


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
    linked = len(warehouse.query("SELECT * FROM idmap.existing WHERE object = 'organizations'"))
    assert linked == len(sandbox.data.pipedrive.planted["existing_org_ids_by_account"])  # name-alikes linked, not duplicated
    assert organization_metadata(result)["created"] == len(staged) - linked


# Where each load step's records live in the simulator's store.
STORE_TABLES = {"organizations_relationships": "organization_relationships"}


def test_every_staged_record_of_every_object_is_loaded_once_with_every_link(
    migrated: tuple[Sandbox, Settings, dg.ExecuteInProcessResult],
) -> None:
    sandbox, settings, result = migrated
    assert result.success
    warehouse = Warehouse(settings.migration_home)
    store = sandbox.pipedrive_app.state.simulator.snapshot()
    stage_ids = warehouse.idmap("stages")
    checked_links = 0
    for step in LOAD_STEPS:
        if step.name == "deal_archive":
            continue
        staged = warehouse.read_staged(step.name)
        idmap = warehouse.idmap(step.name)
        assert len(staged) > 0, step.name
        assert set(idmap) == set(staged["source_id"]), step.name  # every staged record, nothing else
        assert len(set(idmap.values())) == len(idmap), step.name  # each its own Pipedrive record
        held = {str(record["id"]): record for record in store[STORE_TABLES.get(step.name, step.name)] if not record.get("is_deleted")}
        untouched = set(warehouse.query("SELECT source_id FROM idmap.existing WHERE object = ?", [step.name])["source_id"])
        for row in staged.to_dict("records"):
            record = held[idmap[row["source_id"]]]
            if row["source_id"] in untouched:  # a record the account held before: linked, never written to
                continue
            if row.get("owner_id") is not None:
                assert record["owner_id"] == row["owner_id"], (step.name, row["source_id"])
            for column, value in row.items():
                if not column.startswith("ref:") or value is None or (isinstance(value, float) and value != value):
                    continue
                _, key, linked = column.split(":", 2)
                targets = stage_ids if linked == "stages" else warehouse.idmap(linked)
                if key == "label_ids":
                    targets = warehouse.idmap("lead_labels")
                wanted = [targets[str(item)] for item in (list(value) if not isinstance(value, str) else [value]) if str(item) in targets]
                actual = record.get(key)
                if key == "participants":
                    actual = [participant["person_id"] for participant in actual]
                actual = [str(item) for item in (actual if isinstance(actual, list) else [actual])]
                assert sorted(actual) == sorted(wanted), (step.name, row["source_id"], key)
                checked_links += 1
    assert checked_links > 300  # owners aside: organizations, persons, deals, stages, parents, participants, file parents
    archived = {str(deal["id"]) for deal in store["deals"] if deal.get("is_archived")}
    deals = warehouse.idmap("deals")
    assert {deals[source_id] for source_id in warehouse.read_staged("deals_archive_candidates")["source_id"]} == archived


def test_a_second_run_writes_nothing(migrated: tuple[Sandbox, Settings, dg.ExecuteInProcessResult]) -> None:
    sandbox, settings, _ = migrated
    before = sandbox.pipedrive_app.state.simulator.snapshot()
    again = run_job(settings, "full_migration")
    assert again.success
    assert organization_metadata(again)["created"] == 0
    assert sandbox.pipedrive_app.state.simulator.snapshot() == before  # every record of every object, update times included


def test_a_field_changed_in_pipedrive_fails_the_blocking_check_and_stops_downstream(
    migrated: tuple[Sandbox, Settings, dg.ExecuteInProcessResult],
) -> None:
    sandbox, settings, _ = migrated
    warehouse = Warehouse(settings.migration_home)
    untouched = set(warehouse.query("SELECT source_id FROM idmap.existing")["source_id"])  # not compared: never written to
    source_id, pipedrive_id = sorted(item for item in warehouse.idmap("organizations").items() if item[0] not in untouched)[0]
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
