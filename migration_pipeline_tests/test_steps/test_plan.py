"""`migrate plan` on the sandbox: a workbook that speaks for every column, every owner case and every stage."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from migration_pipeline.cli import main
from migration_pipeline.errors import MappingError
from migration_pipeline.mapping.spec import load_object_map
from migration_pipeline.sandbox.runtime import Sandbox
from migration_pipeline.settings import Settings
from migration_pipeline.steps.objects import WORKBOOK_OBJECTS
from migration_pipeline.steps.plan import load_plan, write_plan
from migration_pipeline.steps.schema import read_schema
from migration_pipeline.warehouse.catalog import Warehouse
from migration_pipeline_tests.conftest import settings_for


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Sandbox, Settings]:
    from migration_pipeline.sandbox.runtime import SandboxConfig

    with Sandbox(SandboxConfig(records=2000, seed=11)) as sandbox:
        settings = settings_for(sandbox, tmp_path_factory.mktemp("plan"))
        result = CliRunner().invoke(main, ["plan"], obj={"settings": settings})
        assert result.exit_code == 0, result.output
        yield sandbox, settings


def test_every_column_of_every_object_has_an_entry(planned: tuple[Sandbox, Settings]) -> None:
    _, settings = planned
    attributes = read_schema(Warehouse(settings.migration_home)).attributes
    plan = load_plan(settings.migration_mappings_dir)
    for item in WORKBOOK_OBJECTS:
        object_map = plan.object_maps[item.name]
        columns = set(attributes.loc[(attributes["entity"] == item.logical_name) & attributes["is_valid_for_read"], "column"])
        assert columns, item.name
        assert columns <= object_map.covered_sources, (item.name, columns - object_map.covered_sources)
        for entry in object_map.fields:
            assert entry.notes, (item.name, entry.sources)  # every entry says why
    organizations = plan.object_maps["organizations"]
    by_source = {"/".join(e.sources): e for e in organizations.fields}
    assert by_source["cr7f2_customertier"].custom_field.field_type == "enum"  # a custom picklist, with its labels
    assert by_source["cr7f2_customertier"].custom_field.options == ["Bronze", "Silver", "Gold", "Platinum"]
    assert by_source["versionnumber"].status == "not_migrated"
    assert by_source["industrycode"].target == "industry" and by_source["industrycode"].unmapped_options  # reported, not dropped


def test_every_planted_owner_case_lands_in_its_bucket(planned: tuple[Sandbox, Settings]) -> None:
    sandbox, settings = planned
    planted = sandbox.data.dataverse.planted
    owners = {o.dynamics_id.lower(): o for o in load_plan(settings.migration_mappings_dir).owner_map.owners}
    for user_id, pipedrive_id in sandbox.data.pipedrive.planted["user_ids_by_dynamics_user"].items():
        assert (owners[user_id].status, owners[user_id].pipedrive_user_id) == ("matched", pipedrive_id)
    for user_id in planted["email_case_variant_user_ids"] + planted["email_whitespace_variant_user_ids"]:
        assert owners[user_id].status == "matched"  # emails compare trimmed and case-insensitively
    for user_id in planted["disabled_user_ids"]:
        assert owners[user_id].status == "fallback" and "disabled" in owners[user_id].reason
    for user_id in set(planted["unmatched_owner_ids"]) - set(planted["disabled_user_ids"]):
        assert owners[user_id].status == "needs_pipedrive_account"
    teams = [o for o in owners.values() if o.kind == "team"]
    assert teams and all(o.status == "fallback" and "team" in o.reason for o in teams)
    fallback = load_plan(settings.migration_mappings_dir).owner_map.fallback_user_id
    assert all(o.pipedrive_user_id == fallback for o in owners.values() if o.status != "matched")


def test_both_sales_processes_become_pipelines_with_every_stage_in_order(planned: tuple[Sandbox, Settings]) -> None:
    sandbox, settings = planned
    stage_map = load_plan(settings.migration_mappings_dir).stage_map
    pipelines = {p.dynamics_process: p for p in stage_map.pipelines}
    for name, process in sandbox.data.dataverse.planted["sales_processes"].items():
        pipeline = pipelines[name]
        assert pipeline.dynamics_process_id == process["workflowid"]
        assert [(s.dynamics_stage_id, s.probability) for s in pipeline.stages] == [
            (stage["processstageid"], stage["probability"]) for stage in process["stages"]
        ]
    assert stage_map.unmapped_opportunities == 0
    assert stage_map.opportunities_without_stage == len(sandbox.data.dataverse.planted["opportunities_without_stage"])


def test_planning_again_keeps_a_persons_edits_and_adds_only_what_is_new(planned: tuple[Sandbox, Settings], tmp_path: Path) -> None:
    sandbox, settings = planned
    path = settings.migration_mappings_dir / "organizations.yaml"
    original = path.read_text()
    lines = original.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("- source: description"))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("- "))
    edited = "# Reviewed by Ana: keep the tier as an enum.\n" + "".join(lines[:start] + lines[end:])
    path.write_text(edited)
    try:
        write_plan(Warehouse(settings.migration_home), settings.migration_mappings_dir, [], None)
        again = path.read_text()
        assert again.startswith(edited)  # nothing a person wrote is rewritten
        added = load_object_map(path).fields[-1]
        assert added.sources == ["description"] and "Added by `migrate plan`" in again[len(edited):]
    finally:
        path.write_text(original)


def test_a_malformed_mapping_file_names_the_file_the_entry_and_the_problem(planned: tuple[Sandbox, Settings]) -> None:
    _, settings = planned
    path = settings.migration_mappings_dir / "persons.yaml"
    original = path.read_text()
    path.write_text(original.replace("transform: text", "transform: shout", 1))
    try:
        with pytest.raises(MappingError) as caught:
            load_plan(settings.migration_mappings_dir)
        message = str(caught.value)
        assert "persons.yaml" in message and "line " in message and "(entry for " in message and "transform" in message
        result = CliRunner().invoke(main, ["confirm", "--yes"], obj={"settings": settings})
        assert result.exit_code == MappingError.exit_code and "persons.yaml" in result.output
    finally:
        path.write_text(original)
