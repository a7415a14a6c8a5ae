"""Custom entities flatten onto their nearest Pipedrive object: the link is read from the relationships."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from migration_pipeline.errors import MappingError
from migration_pipeline.mapping.custom_entities import (
    propose_custom_entities,
    read_custom_entity_map,
    write_custom_entity_map,
)

ENTITIES = pd.DataFrame(
    [
        ("account", "accounts", "Account", False, False, "accountid", "name"),
        ("contact", "contacts", "Contact", False, False, "contactid", "fullname"),
        ("cr7f2_project", "cr7f2_projects", "Project", True, False, "cr7f2_projectid", "cr7f2_name"),
        ("cr7f2_project_account", "cr7f2_project_accountset", "Project Account", True, True, "cr7f2_project_accountid", None),
        ("new_visit", "new_visits", "Site Visit", True, False, "new_visitid", "new_name"),
        ("new_orphan", "new_orphans", "Orphan", True, False, "new_orphanid", "new_name"),
    ],
    columns=["logical_name", "entity_set_name", "display_name", "is_custom_entity", "is_intersect", "primary_id_attribute", "primary_name_attribute"],
)
RELATIONSHIPS = pd.DataFrame(
    [
        ("cr7f2_account_project", "OneToManyRelationship", "account", "cr7f2_project", "cr7f2_accountid", None, None, None),
        ("cr7f2_project_account", "ManyToManyRelationship", None, None, None, "cr7f2_project", "account", "cr7f2_project_account"),
        ("new_contact_visit", "OneToManyRelationship", "contact", "new_visit", "new_contactid", None, None, None),
    ],
    columns=["schema_name", "relationship_type", "referenced_entity", "referencing_entity", "referencing_attribute", "entity1", "entity2", "intersect_entity"],
)


def test_the_nearest_object_is_read_from_the_relationships() -> None:
    plans = {plan.entity: plan for plan in propose_custom_entities(ENTITIES, RELATIONSHIPS, {"cr7f2_projects": 3}).entities}
    assert set(plans) == {"cr7f2_project", "new_visit"}  # an entity linked to nothing migrated has no plan
    project = plans["cr7f2_project"]
    assert (project.target_object, project.link, project.intersect_entity_set) == ("organizations", "many_to_many", "cr7f2_project_accountset")
    assert (project.intersect_entity_key, project.intersect_target_key, project.records) == ("cr7f2_projectid", "accountid", 3)
    visit = plans["new_visit"]
    assert (visit.target_object, visit.link, visit.lookup_column) == ("persons", "lookup", "_new_contactid_value")
    assert visit.ids_field.name == "Site Visit IDs (Dynamics)"


def test_the_map_round_trips_and_a_wrong_target_names_the_field(tmp_path: Path) -> None:
    custom = propose_custom_entities(ENTITIES, RELATIONSHIPS)
    path = tmp_path / "custom_entities.yaml"
    write_custom_entity_map(custom, path)
    assert read_custom_entity_map(path) == custom
    path.write_text(path.read_text().replace("target_object: persons", "target_object: tickets"))
    with pytest.raises(MappingError, match="target_object"):
        read_custom_entity_map(path)
