"""A custom entity's key fields surfaced on its nearest object, as the plan says, N:N ids pipe-delimited."""

from __future__ import annotations

import pandas as pd

from migration_pipeline.mapping.custom_entities import CustomEntityPlan
from migration_pipeline.mapping.rules.common import Links
from migration_pipeline.mapping.rules.custom_entities import custom_fields, transform_custom_entity
from migration_pipeline.mapping.spec import CustomFieldTarget
from migration_pipeline_tests.test_mapping.rules.frames import EUR, context, currencies, organizations, rejects_of, table


def plan(**fields: object) -> CustomEntityPlan:
    """What `propose_custom_entities` proposes for the sandbox's projects."""
    return CustomEntityPlan(**{
        "entity": "cr7f2_project", "entity_set": "cr7f2_projects", "display_name": "Project", "target_object": "organizations",
        "link": "many_to_many", "intersect_entity_set": "cr7f2_project_accountset", "intersect_entity_key": "cr7f2_projectid",
        "intersect_target_key": "accountid", "primary_id": "cr7f2_projectid", "primary_name": "cr7f2_name",
        "names_field": CustomFieldTarget(name="Project (Dynamics)", field_type="text"),
        "ids_field": CustomFieldTarget(name="Project IDs (Dynamics)", field_type="text"), **fields})


def links() -> Links:
    found = Links()
    found.add("account", organizations({"accountid": "acme", "name": "Acme"}, {"accountid": "beta", "name": "Beta"}))
    return found


PROJECTS = pd.DataFrame([
    {"cr7f2_projectid": "p2", "cr7f2_name": "Rollout | phase 2", "_cr7f2_accountid_value": "acme", "cr7f2_projectstatus__label": "Planned",
     "cr7f2_startdate": "2024-01-01", "cr7f2_budget": 1000.0, "_transactioncurrencyid_value": EUR},
    {"cr7f2_projectid": "p1", "cr7f2_name": "Audit", "_cr7f2_accountid_value": None, "cr7f2_projectstatus__label": "On Hold",
     "cr7f2_startdate": None, "cr7f2_budget": None, "_transactioncurrencyid_value": None},
    {"cr7f2_projectid": "p3", "cr7f2_name": "Lonely", "_cr7f2_accountid_value": "deleted", "cr7f2_projectstatus__label": None,
     "cr7f2_startdate": None, "cr7f2_budget": None, "_transactioncurrencyid_value": None},
], dtype=object)
INTERSECT = pd.DataFrame([
    {"cr7f2_project_accountid": "x1", "accountid": "acme", "cr7f2_projectid": "p2"},
    {"cr7f2_project_accountid": "x2", "accountid": "acme", "cr7f2_projectid": "p1"},
    {"cr7f2_project_accountid": "x3", "accountid": "beta", "cr7f2_projectid": "p2"},
    {"cr7f2_project_accountid": "x4", "accountid": "deleted", "cr7f2_projectid": "p1"},
    {"cr7f2_project_accountid": "x5", "accountid": "deleted", "cr7f2_projectid": "p3"},
], dtype=object)


def test_projects_surface_on_their_accounts_through_the_intersect_pipe_delimited() -> None:
    stage = transform_custom_entity(PROJECTS, INTERSECT, plan(), context(), links(), currencies())
    fields = stage.extra["fields"].set_index("source_id")
    assert fields.loc["acme"].to_dict() == {
        "custom:Project IDs (Dynamics)": "p1|p2", "custom:Project (Dynamics)": "Audit|Rollout / phase 2",
        "custom:Project Status (Dynamics)": "On Hold|Planned", "custom:Project Start Date (Dynamics)": "|2024-01-01",
        "custom:Project Budget (Dynamics)": "|1000.00 EUR"}
    assert fields.loc["beta", "custom:Project IDs (Dynamics)"] == "p2"
    merged = stage.merged.set_index("source_id")
    assert (merged.loc["p2", "into_source_id"], merged.loc["p1", "into_source_id"]) == ("acme", "acme")
    assert merged.loc["x3", "rule"] == "n_n_link" and merged.loc["x3", "object"] == "cr7f2_project_accountset"
    assert rejects_of(stage, "p3") == [("*", "custom_entity:cr7f2_projects")]
    assert rejects_of(stage, "x4") == [("*", "n_n_link")]
    assert [f.name for f in custom_fields(plan())] == ["Project IDs (Dynamics)", "Project (Dynamics)", "Project Status (Dynamics)",
                                                       "Project Start Date (Dynamics)", "Project Budget (Dynamics)"]


def test_a_lookup_plan_uses_the_lookup_and_a_none_plan_leaves_everything_in_dynamics() -> None:
    stage = transform_custom_entity(PROJECTS, None, plan(link="lookup", lookup_column="_cr7f2_accountid_value"), context(), links())
    assert stage.extra["fields"].set_index("source_id").loc["acme", "custom:Project IDs (Dynamics)"] == "p2"
    assert sorted(stage.rejects["source_id"]) == ["p1", "p3"]
    left_out = transform_custom_entity(PROJECTS, INTERSECT, plan(target_object="none"), context(), links())
    assert sorted(left_out.rejects["source_id"]) == ["p1", "p2", "p3", "x1", "x2", "x3", "x4", "x5"]
    assert left_out.extra["fields"].empty
