"""The Dagster definitions load, with the assets, checks and jobs DESIGN.md names."""

from __future__ import annotations

import dagster as dg

from migration_pipeline.definitions import defs


def test_definitions_are_loadable() -> None:
    dg.Definitions.validate_loadable(defs)


def test_expected_assets_checks_and_jobs() -> None:
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {"dynamics/accounts", "staged/organizations", "pipedrive/custom_fields", "pipedrive/organizations"} <= keys
    check_keys = {f"{key.asset_key.to_user_string()}:{key.name}" for key in graph.asset_check_keys}
    assert "pipedrive/organizations:field_diff" in check_keys
    for job in ("full_migration", "extract", "verify"):
        assert defs.resolve_job_def(job).name == job


def test_pipedrive_writers_share_one_pool() -> None:
    load = defs.resolve_assets_def(dg.AssetKey(["pipedrive", "organizations"]))
    assert {spec.pool for spec in [load.op]} == {"pipedrive_api"}
