"""The plan's blocking `confirmed` check stops every transform and load of a Dagster run, not only the CLI's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dagster as dg

from migration_pipeline.definitions import build_definitions
from migration_pipeline.sandbox.runtime import Sandbox
from migration_pipeline.steps.plan import confirm_plan
from migration_pipeline_tests.conftest import settings_for

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def test_an_unconfirmed_plan_fails_the_check_and_nothing_is_staged_or_loaded(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(records=200, seed=4)
    settings = settings_for(sandbox, tmp_path)
    definitions = build_definitions(settings)

    def run(job: str) -> dg.ExecuteInProcessResult:
        return definitions.resolve_job_def(job).execute_in_process(
            run_config=QUIET, raise_on_error=False, instance=dg.DagsterInstance.ephemeral()
        )

    planned = run("plan")
    assert planned.success
    assert {"plan/workbook", "dynamics/opportunities"} <= {e.materialization.asset_key.to_user_string() for e in planned.get_asset_materialization_events()}

    result = run("full_migration")
    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "confirmed"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert "has not been confirmed" in (check.description or "")
    materialized = {e.materialization.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert not any(key.startswith(("staged/", "pipedrive/")) for key in materialized)
    assert sandbox.pipedrive_app.state.simulator.snapshot()["organizations"] == sandbox.pipedrive_app.state.simulator.snapshot()["organizations"]

    confirm_plan(settings.migration_mappings_dir, confirmed_by="test")
    again = run("full_migration")
    assert again.success
    (check,) = [c for c in again.get_asset_check_evaluations() if c.check_name == "confirmed"]
    assert check.passed
