"""Schema discovery against the sandbox: the custom table, its N:N intersect and the custom columns are found.

The sandbox serves the metadata shapes of the Web API (labels, casts, option sets,
`RelationshipDefinitions`), so what discovery stores here is what it stores for a real org.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from migration_pipeline.dynamics.client import DataverseClient
from migration_pipeline.dynamics.models import AttributeDefinition, EntityDefinition, ManagedValue
from migration_pipeline.errors import MigrationError
from migration_pipeline.sandbox import catalog
from migration_pipeline.sandbox.runtime import Sandbox
from migration_pipeline.steps import schema as discovery
from migration_pipeline.steps.extract import scope_tables
from migration_pipeline.steps.objects import STANDARD_TABLES
from migration_pipeline.warehouse.catalog import Warehouse
from migration_pipeline_tests.conftest import settings_for


@pytest.fixture(scope="module")
def discovered(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> tuple[Warehouse, int]:
    settings = settings_for(sandbox, tmp_path_factory.mktemp("schema"))
    warehouse = Warehouse(settings.migration_home)
    with DataverseClient.from_settings(settings) as client:
        discovery.write_schema(warehouse, discovery.discover_schema(client))
        requests = client.stats.requests
    return warehouse, requests


def test_the_schema_tables_are_duckdb_views(discovered: tuple[Warehouse, int]) -> None:
    warehouse, _ = discovered
    for table in ("schema_entities", "schema_attributes", "schema_relationships"):
        assert warehouse.query(f"SELECT count(*) AS n FROM raw.{table}").iloc[0, 0] > 0


def test_standard_tables_in_order_then_the_custom_table_and_its_intersect(discovered: tuple[Warehouse, int]) -> None:
    warehouse, _ = discovered
    entities = warehouse.query("SELECT * FROM raw.schema_entities").set_index("logical_name")
    assert list(entities.index) == [name for name, _ in STANDARD_TABLES] + ["cr7f2_project", "cr7f2_project_account"]
    assert entities.at["cr7f2_project", "is_custom_entity"] and not entities.at["cr7f2_project", "is_intersect"]
    assert entities.at["cr7f2_project_account", "is_custom_entity"] and entities.at["cr7f2_project_account", "is_intersect"]
    assert entities.at["cr7f2_project", "entity_set_name"] == "cr7f2_projects"
    assert entities.at["cr7f2_project", "display_name"] == "Project"
    assert entities.at["account", "primary_name_attribute"] == "name" and entities.at["account", "change_tracking_enabled"]
    assert entities.at["phonecall", "is_activity"]
    assert not entities.at["sdkmessageprocessingstep", "readable"]  # the sandbox's identity may not read it
    assert entities.drop(index="sdkmessageprocessingstep")["readable"].all()
    assert entities.at["organization", "entity_set_name"] == "organizations"  # read for its base currency


def test_custom_columns_on_standard_tables_are_flagged_with_their_types(discovered: tuple[Warehouse, int]) -> None:
    warehouse, _ = discovered
    attributes = warehouse.query("SELECT * FROM raw.schema_attributes").set_index(["entity", "logical_name"])
    custom = attributes[attributes["is_custom_attribute"]]
    expected = {(e.logical_name, a.logical_name) for e in catalog.ENTITIES.values() if e.logical_name != "organization"
                for a in e.attributes if a.is_custom}
    assert set(custom.index) == expected
    assert {("account", "cr7f2_customertier"), ("account", "new_region"), ("contact", "cr7f2_linkedinurl"),
            ("opportunity", "cr7f2_renewaldate"), ("cr7f2_project_account", "cr7f2_projectid")} <= expected
    assert custom.at[("account", "new_region"), "attribute_type"] == "MultiSelectPicklist"
    assert custom.at[("contact", "cr7f2_linkedinurl"), "format"] == "Url"
    assert custom.at[("contact", "cr7f2_linkedinurl"), "max_length"] == 200
    assert custom.at[("opportunity", "cr7f2_renewaldate"), "format"] == "DateOnly"
    tiers = json.loads(custom.at[("account", "cr7f2_customertier"), "options"])
    assert tiers == [{"value": value, "label": label} for value, label in catalog.CUSTOMER_TIERS.items()]
    assert not attributes.at[("account", "name"), "is_custom_attribute"]


def test_columns_carry_wire_names_targets_and_options(discovered: tuple[Warehouse, int]) -> None:
    warehouse, _ = discovered
    attributes = warehouse.query("SELECT * FROM raw.schema_attributes").set_index(["entity", "logical_name"])
    parent = attributes.loc[("contact", "parentcustomerid")]
    assert (parent["column"], parent["attribute_type"], parent["targets"]) == ("_parentcustomerid_value", "Customer", "account|contact")
    assert attributes.at[("account", "ownerid"), "targets"] == "systemuser|team"
    assert attributes.at[("account", "websiteurl"), "column"] == "websiteurl"
    assert attributes.at[("account", "accountid"), "is_primary_id"] and attributes.at[("account", "name"), "is_primary_name"]
    assert attributes.at[("account", "name"), "required_level"] == "ApplicationRequired"
    assert len(json.loads(attributes.at[("account", "industrycode"), "options"])) == len(catalog.INDUSTRY_CODES)
    assert pd.isna(attributes.at[("account", "name"), "options"])
    assert attributes.at[("account", "description"), "attribute_type"] == "Memo"


def test_relationships_one_to_many_and_the_custom_many_to_many(discovered: tuple[Warehouse, int]) -> None:
    warehouse, _ = discovered
    relationships = warehouse.query("SELECT * FROM raw.schema_relationships").set_index("schema_name")
    nn = relationships.loc["cr7f2_project_account"]
    assert (nn["relationship_type"], nn["entity1"], nn["entity2"], nn["intersect_entity"], nn["is_custom"]) == (
        "ManyToManyRelationship", "cr7f2_project", "account", "cr7f2_project_account", True)
    parent = relationships.loc["account_parent_account"]
    assert (parent["referencing_entity"], parent["referencing_attribute"], parent["referenced_entity"]) == ("account", "parentaccountid", "account")
    assert not parent["is_custom"]
    assert relationships.loc["cr7f2_account_cr7f2_project_accountid", "is_custom"]


def test_the_extract_scope_is_the_readable_tables_standard_first(discovered: tuple[Warehouse, int]) -> None:
    warehouse, _ = discovered
    scope = [(table.logical_name, table.entity_set) for table in scope_tables(warehouse.home)]
    standard = [pair for pair in STANDARD_TABLES if pair[0] != "sdkmessageprocessingstep"]
    assert scope == standard + [("cr7f2_project", "cr7f2_projects"), ("cr7f2_project_account", "cr7f2_project_accountset")]
    tracked = {table.entity_set: table.track_changes for table in scope_tables(warehouse.home)}
    assert tracked["accounts"] and not tracked["transactioncurrencies"] and not tracked["cr7f2_project_accountset"]


def test_requests_stay_few(discovered: tuple[Warehouse, int]) -> None:
    _, requests = discovered
    tables = len(STANDARD_TABLES) + 2
    # Per table: columns, up to 5 type casts, up to 4 option-set casts, one probe; plus definitions and 2 relationship casts.
    assert requests <= 11 * tables + 3


def test_before_discovery_reading_the_schema_is_an_actionable_error(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="dynamics/schema"):
        discovery.read_schema(Warehouse(tmp_path))


def definition(name: str, custom: bool = False) -> EntityDefinition:
    return EntityDefinition(logical_name=name, entity_set_name=f"{name}s", primary_id_attribute=f"{name}id", is_custom_entity=custom)


def test_scope_keeps_standard_order_then_custom_tables_by_name() -> None:
    definitions = [definition("new_zeta", True), definition("contact"), definition("territory"), definition("account"),
                   definition("cr1_alpha", True)]
    assert [d.logical_name for d in discovery.tables_in_scope(definitions)] == ["account", "contact", "cr1_alpha", "new_zeta"]


def test_a_multi_select_choice_is_named_by_its_type_name() -> None:
    virtual = AttributeDefinition(logical_name="new_regions", attribute_type="Virtual",
                                  attribute_type_name=ManagedValue(value="MultiSelectPicklistType"))
    assert discovery.attribute_type(virtual) == "MultiSelectPicklist"
    assert discovery.attribute_type(AttributeDefinition(logical_name="name", attribute_type="String")) == "String"


def test_helper_columns_of_lookups_are_left_out() -> None:
    attributes = [AttributeDefinition(logical_name="ownerid", attribute_type="Owner"),
                  AttributeDefinition(logical_name="owneridname", attribute_type="String", attribute_of="ownerid")]
    rows = discovery.attribute_rows_for("account", attributes, {}, {})
    assert [(row["logical_name"], row["column"]) for row in rows] == [("ownerid", "_ownerid_value")]
