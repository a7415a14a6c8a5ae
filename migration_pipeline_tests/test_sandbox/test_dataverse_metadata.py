"""EntityDefinitions, Attributes (and casts), RelationshipDefinitions, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from migration_pipeline_tests.test_sandbox.dataverse_fixture import Served, served

ACCOUNT = "EntityDefinitions(LogicalName='account')"
CAST = "Microsoft.Dynamics.CRM."


@pytest.fixture(scope="module")
def dv() -> Iterator[Served]:
    with served() as running:
        yield running


def test_entity_definitions_select_and_filter(dv: Served) -> None:
    select = "LogicalName,EntitySetName,PrimaryIdAttribute,PrimaryNameAttribute,IsCustomEntity,ChangeTrackingEnabled,ObjectTypeCode"
    body = dv.get("EntityDefinitions", params={"$select": select}).json()
    by_name = {item["LogicalName"]: item for item in body["value"]}
    assert {"account", "contact", "annotation", "organization"} <= set(by_name)
    assert by_name["account"]["EntitySetName"] == "accounts" and by_name["account"]["ObjectTypeCode"] == 1
    assert set(by_name["account"]) == {"MetadataId", *select.split(",")}
    assert by_name["transactioncurrency"]["ChangeTrackingEnabled"] is False
    tracked = dv.get("EntityDefinitions", params={"$select": "LogicalName", "$filter": "ChangeTrackingEnabled eq true"}).json()["value"]
    assert "transactioncurrency" not in {item["LogicalName"] for item in tracked} and "account" in {item["LogicalName"] for item in tracked}
    one = dv.get("EntityDefinitions", params={"$filter": "LogicalName eq 'account'", "$select": "LogicalName"}).json()["value"]
    assert [item["LogicalName"] for item in one] == ["account"]
    assert dv.get("EntityDefinitions", params={"$filter": "IsCustomEntity eq true"}).json()["value"] == []
    assert dv.get("EntityDefinitions", params={"$select": "NoSuchProperty"}).status_code == 400


def test_single_entity_definition_by_name_and_metadata_id(dv: Served) -> None:
    entity = dv.get(ACCOUNT, params={"$select": "LogicalName,DisplayName"}).json()
    assert entity["@odata.context"].endswith("/$entity")
    assert entity["DisplayName"]["UserLocalizedLabel"]["Label"] == "Account"
    assert dv.get(f"EntityDefinitions({entity['MetadataId']})").json()["LogicalName"] == "account"
    assert dv.get("EntityDefinitions(LogicalName='nosuch')").status_code == 404


def test_attributes_base_properties(dv: Served) -> None:
    select = "LogicalName,SchemaName,AttributeType,AttributeTypeName,DisplayName,Description,IsCustomAttribute,IsValidForRead,RequiredLevel,AttributeOf"
    attributes = {a["LogicalName"]: a for a in dv.get(f"{ACCOUNT}/Attributes", params={"$select": select}).json()["value"]}
    name = attributes["name"]
    assert name["@odata.type"] == "#Microsoft.Dynamics.CRM.StringAttributeMetadata"
    assert name["AttributeType"] == "String" and name["AttributeTypeName"] == {"Value": "StringType"}
    assert name["RequiredLevel"]["Value"] == "ApplicationRequired" and name["AttributeOf"] is None
    assert name["DisplayName"]["UserLocalizedLabel"]["Label"] == "Account Name"
    assert attributes["new_tier"]["IsCustomAttribute"] is True and attributes["ownerid"]["AttributeType"] == "Owner"
    # type-specific properties need the cast
    assert dv.get(f"{ACCOUNT}/Attributes", params={"$select": "LogicalName,MaxLength"}).status_code == 400


def test_attribute_type_filter_needs_the_qualified_enum(dv: Served) -> None:
    qualified = dv.get(f"{ACCOUNT}/Attributes", params={"$select": "LogicalName", "$filter": "AttributeType eq Microsoft.Dynamics.CRM.AttributeTypeCode'Picklist'"})
    assert {a["LogicalName"] for a in qualified.json()["value"]} == {"industrycode", "new_tier"}
    assert dv.get(f"{ACCOUNT}/Attributes", params={"$filter": "AttributeType eq 'Picklist'"}).status_code == 400


def test_string_cast(dv: Served) -> None:
    rows = dv.get(f"{ACCOUNT}/Attributes/{CAST}StringAttributeMetadata", params={"$select": "LogicalName,MaxLength,Format"}).json()["value"]
    by_name = {row["LogicalName"]: row for row in rows}
    assert by_name["name"]["MaxLength"] == 160 and by_name["emailaddress1"]["Format"] == "Email"
    assert "revenue" not in by_name


@pytest.mark.parametrize("cast", ["PicklistAttributeMetadata", "StateAttributeMetadata", "StatusAttributeMetadata"])
def test_choice_casts_expand_option_sets(dv: Served, cast: str) -> None:
    rows = dv.get(f"{ACCOUNT}/Attributes/{CAST}{cast}", params={"$select": "LogicalName", "$expand": "OptionSet"}).json()["value"]
    assert rows
    for row in rows:
        options = row["OptionSet"]["Options"]
        assert all(isinstance(o["Value"], int) and o["Label"]["UserLocalizedLabel"]["Label"] for o in options)
    if cast == "StatusAttributeMetadata":
        assert {o["Value"]: o["State"] for o in rows[0]["OptionSet"]["Options"]} == {1: 0, 2: 1}
    without = dv.get(f"{ACCOUNT}/Attributes/{CAST}{cast}", params={"$select": "LogicalName"}).json()["value"][0]
    assert "OptionSet" not in without


def test_global_option_set_and_single_attribute_cast(dv: Served) -> None:
    tier = dv.get(f"{ACCOUNT}/Attributes(LogicalName='new_tier')/{CAST}PicklistAttributeMetadata", params={"$select": "LogicalName", "$expand": "OptionSet,GlobalOptionSet"}).json()
    assert tier["GlobalOptionSet"]["Name"] == "new_tier" and tier["GlobalOptionSet"]["IsGlobal"] is True
    assert [o["Value"] for o in tier["OptionSet"]["Options"]] == [100000000, 100000001]
    wrong = dv.get(f"{ACCOUNT}/Attributes(LogicalName='name')/{CAST}PicklistAttributeMetadata")
    assert wrong.status_code == 400
    assert dv.get(f"{ACCOUNT}/Attributes(LogicalName='nosuch')").status_code == 404


def test_lookup_money_integer_decimal_casts(dv: Served) -> None:
    lookups = {r["LogicalName"]: r for r in dv.get(f"{ACCOUNT}/Attributes/{CAST}LookupAttributeMetadata", params={"$select": "LogicalName,Targets"}).json()["value"]}
    assert lookups["ownerid"]["Targets"] == ["systemuser", "team"] and lookups["parentaccountid"]["Targets"] == ["account"]
    money = {r["LogicalName"]: r for r in dv.get(f"{ACCOUNT}/Attributes/{CAST}MoneyAttributeMetadata", params={"$select": "LogicalName,Precision,MinValue,MaxValue"}).json()["value"]}
    assert money["revenue"]["Precision"] == 2 and money["revenue"]["MinValue"] == 0
    integer = dv.get(f"{ACCOUNT}/Attributes/{CAST}IntegerAttributeMetadata", params={"$select": "LogicalName,MinValue,MaxValue"}).json()["value"]
    assert {r["LogicalName"] for r in integer} == {"numberofemployees"}
    decimal = {r["LogicalName"]: r for r in dv.get(f"{ACCOUNT}/Attributes/{CAST}DecimalAttributeMetadata", params={"$select": "LogicalName,Precision"}).json()["value"]}
    assert decimal["exchangerate"]["Precision"] == 10
    assert dv.get(f"{ACCOUNT}/Attributes/{CAST}NoSuchAttributeMetadata").status_code == 404


def test_relationship_definitions_and_casts(dv: Served) -> None:
    base = dv.get("RelationshipDefinitions", params={"$select": "SchemaName,RelationshipType"}).json()["value"]
    assert {r["SchemaName"] for r in base} == {"account_parent_account", "contact_customer_accounts", "account_primary_contact", "new_account_contact"}
    assert dv.get("RelationshipDefinitions", params={"$select": "ReferencedEntity"}).status_code == 400
    one_to_many = dv.get(
        f"RelationshipDefinitions/{CAST}OneToManyRelationshipMetadata",
        params={"$select": "SchemaName,ReferencingEntity,ReferencingAttribute", "$filter": "ReferencedEntity eq 'account'"},
    ).json()["value"]
    assert {(r["ReferencingEntity"], r["ReferencingAttribute"]) for r in one_to_many} == {("account", "parentaccountid"), ("contact", "parentcustomerid")}
    many = dv.get(f"RelationshipDefinitions/{CAST}ManyToManyRelationshipMetadata").json()["value"]
    assert many[0]["IntersectEntityName"] == "new_account_contact" and many[0]["Entity1IntersectAttribute"] == "accountid"
    single = dv.get("RelationshipDefinitions(SchemaName='account_parent_account')").json()
    assert single["IsHierarchical"] is True


def test_per_entity_relationship_navigations(dv: Served) -> None:
    def names(path: str) -> set[str]:
        return {r["SchemaName"] for r in dv.get(f"{ACCOUNT}/{path}", params={"$select": "SchemaName"}).json()["value"]}

    assert names("OneToManyRelationships") == {"account_parent_account", "contact_customer_accounts"}
    assert names("ManyToOneRelationships") == {"account_parent_account", "account_primary_contact"}
    assert names("ManyToManyRelationships") == {"new_account_contact"}


def test_expand_attributes_on_an_entity(dv: Served) -> None:
    entity = dv.get(ACCOUNT, params={"$select": "LogicalName", "$expand": "Attributes($select=LogicalName;$filter=IsCustomAttribute eq true)"}).json()
    assert {a["LogicalName"] for a in entity["Attributes"]} == {"new_tier", "new_founded", "new_rating"}


def test_metadata_is_not_paged(dv: Served) -> None:
    body = dv.get(f"{ACCOUNT}/Attributes", "odata.maxpagesize=2").json()
    assert len(body["value"]) > 2 and "@odata.nextLink" not in body
