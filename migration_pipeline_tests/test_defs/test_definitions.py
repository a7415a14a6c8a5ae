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


def test_catalog_is_documented_and_owned() -> None:
    """What the UI shows a data engineer: every asset grouped, described, owned and kinded; every check, job, sensor and
    schedule described (the implicit `__ASSET_JOB` aside, which Dagster makes and nobody launches)."""
    graph = defs.resolve_asset_graph()
    undocumented = [
        f"{node.key.to_user_string()}: {gap}"
        for node in graph.asset_nodes
        for gap, missing in (("group", not node.group_name or node.group_name == "default"),
                             ("description", not (node.description or "").strip()),
                             ("owner", not node.owners), ("kind", not node.kinds))
        if missing
    ]
    undocumented += [f"check {key.to_user_string()}" for key in graph.asset_check_keys
                     if not (graph.get_check_spec(key).description or "").strip()]
    undocumented += [f"job {job.name}" for job in defs.resolve_all_job_defs()
                     if not job.name.startswith("__") and not (job.description or "").strip()]
    undocumented += [f"sensor {sensor.name}" for sensor in defs.sensors or [] if not (sensor.description or "").strip()]
    undocumented += [f"schedule {schedule.name}" for schedule in defs.schedules or [] if not (schedule.description or "").strip()]
    assert not undocumented, undocumented
    assert {sensor.name for sensor in defs.sensors or []} >= {"dynamics_delta_sensor"}
    assert {schedule.name for schedule in defs.schedules or []} >= {"delta_cutover_schedule"}
    assert {job.name for job in defs.resolve_all_job_defs()} >= {
        "sample_migration", "full_migration", "delta_migration", "rollback", "audit", "plan", "extract", "verify"}
