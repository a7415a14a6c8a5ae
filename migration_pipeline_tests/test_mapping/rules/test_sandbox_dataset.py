"""Every rule over the 10,000-record sandbox, extracted through the real extractor.

Two promises are checked on realistic data: every source record of every table ends staged,
merged by a named rule, or rejected with a reason (and the planted cases land where they
should), and every staged row becomes a request body the Pipedrive specs accept.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from migration_pipeline.dynamics.client import DataverseClient
from migration_pipeline.mapping.payload import plain
from migration_pipeline.mapping.rules.common import ObjectStage
from migration_pipeline.mapping.rules.organizations import PARENT_LINKED
from migration_pipeline.mapping.rules.persons import ORG, PLACEHOLDER_ORG_ID
from migration_pipeline.mapping.rules.run import transform_all
from migration_pipeline.sandbox.pipedrive.schemas import validate_body
from migration_pipeline.sandbox.runtime import Sandbox, SandboxConfig
from migration_pipeline.steps.extract import ExtractFailure, ExtractResult, extract_tables, scope_tables
from migration_pipeline.steps.plan import load_plan, write_plan
from migration_pipeline.steps.schema import discover_schema, write_schema
from migration_pipeline.steps.transform import organizations_stage, rule_context
from migration_pipeline.warehouse.catalog import Warehouse
from migration_pipeline_tests.conftest import settings_for

pytestmark = pytest.mark.slow

# Entity set -> (key column, the stages that account for its records).
SOURCES: dict[str, tuple[str, tuple[str, ...]]] = {
    "accounts": ("accountid", ("organizations",)),
    "contacts": ("contactid", ("persons",)),
    "opportunities": ("opportunityid", ("deals",)),
    "leads": ("leadid", ("leads",)),
    "activitypointers": ("activityid", ("activities",)),
    "phonecalls": ("activityid", ("activities",)),
    "emails": ("activityid", ("activities",)),
    "tasks": ("activityid", ("activities",)),
    "appointments": ("activityid", ("activities",)),
    "activityparties": ("activitypartyid", ("activities",)),
    "products": ("productid", ("products",)),
    "productpricelevels": ("productpricelevelid", ("products",)),
    "productassociations": ("productassociationid", ("products",)),
    "opportunityproducts": ("opportunityproductid", ("deal_products",)),
    "annotations": ("annotationid", ("notes", "files")),
    "cr7f2_projects": ("cr7f2_projectid", ("cr7f2_projects",)),
    "cr7f2_project_accountset": ("cr7f2_project_accountid", ("cr7f2_projects",)),
}
# Read by the plan and the rules as configuration, not migrated as records of their own (and the schema tables).
REFERENCE_TABLES = {"systemusers", "teams", "transactioncurrencies", "pricelevels", "processstages", "workflows", "organizations",
                    "schema_entities", "schema_attributes", "schema_relationships"}


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, pd.DataFrame], dict[str, ObjectStage], dict[str, Any]]]:
    root = tmp_path_factory.mktemp("rules-sandbox")
    with Sandbox(SandboxConfig(records=10_000, seed=42)) as sandbox:
        settings = settings_for(sandbox, root)
        warehouse = Warehouse(root / "home")
        with DataverseClient.from_settings(settings) as client:
            schema = discover_schema(client)
            write_schema(warehouse, schema)
            outcomes = list(extract_tables(client, warehouse, scope_tables(root / "home")))
        assert not [o for o in outcomes if isinstance(o, ExtractFailure)]
        raw = {o.entity_set: warehouse.read_raw(o.entity_set) for o in outcomes if isinstance(o, ExtractResult)}
        # The plan as `migrate plan` proposes it, confirmed as is.
        write_plan(warehouse, settings.migration_mappings_dir, sandbox.data.pipedrive.users,
                   sandbox.environment()["PIPEDRIVE_FALLBACK_OWNER_EMAIL"])
        plan = load_plan(settings.migration_mappings_dir)
        custom_entities = plan.custom_entities.entities
        assert [entity.entity_set for entity in custom_entities] == ["cr7f2_projects"]
        stages = transform_all(raw, rule_context(plan, raw), organizations_stage(plan, raw), custom_entities)
        yield raw, stages, sandbox.data.dataverse.planted


def outcome_sets(stage: ObjectStage) -> dict[str, set[str]]:
    whole = stage.rejects[stage.rejects["field"] == "*"]
    return {"staged": set(stage.staged["source_id"]), "merged": set(stage.merged["source_id"]), "rejected": set(whole["source_id"])}


def test_every_source_record_is_staged_merged_or_rejected(
    migrated: tuple[dict[str, pd.DataFrame], dict[str, ObjectStage], dict[str, Any]], tmp_path: Path,
) -> None:
    raw, stages, _ = migrated
    assert set(raw) - set(SOURCES) - REFERENCE_TABLES == set(), "a raw table nobody accounts for"
    for name, stage in stages.items():
        sets = outcome_sets(stage)
        assert not sets["staged"] & sets["merged"] and not sets["staged"] & sets["rejected"] and not sets["merged"] & sets["rejected"], name
        assert stage.staged["source_id"].is_unique, name
        assert stage.rejects["reason"].notna().all() and stage.merged["rule"].notna().all(), name
        Warehouse(tmp_path).write_staged(name, stage.staged)  # staged/<object>/*.parquet takes every column as it is
    for entity_set, (key, names) in SOURCES.items():
        ids = set(raw[entity_set][key].astype(str))
        accounted: set[str] = set()
        for name in names:
            for found in outcome_sets(stages[name]).values():
                accounted |= found & ids
        assert accounted == ids, f"{entity_set}: {len(ids - accounted)} records unaccounted for, e.g. {sorted(ids - accounted)[:3]}"
    source_ids = {str(value) for entity_set, (key, _) in SOURCES.items() for value in raw[entity_set][key]}
    made = [sid for stage in stages.values() for sid in stage.staged["source_id"] if sid not in source_ids]
    assert all(":" in sid or "/" in sid for sid in made), "a staged row that is neither a source record nor a record the rules made"


def test_the_planted_cases_land_where_they_should(migrated: tuple[dict[str, pd.DataFrame], dict[str, ObjectStage], dict[str, Any]]) -> None:
    raw, stages, planted = migrated
    organizations, persons, leads = stages["organizations"], stages["persons"], stages["leads"]
    reject_rules = all_rejects(stages)

    circle = set(planted["circular_account_ids"])
    assert circle <= set(organizations.staged["source_id"])
    cycle_rejects = reject_rules[reject_rules["rule"] == "parent_cycle"]
    assert list(cycle_rejects["source_id"]) == [min(circle)]
    assert organizations.extra["cycles"]["dropped_link_of"].tolist() == [min(circle)]
    links = organizations.extra["relationships"]
    assert not (links[PARENT_LINKED] == min(circle)).any() and (links[PARENT_LINKED].isin(circle - {min(circle)})).sum() == 2
    assert set(planted["invalid_website_account_ids"]) <= rejected(reject_rules, "url:websiteurl")
    assert set(planted["employee_count_out_of_range_account_ids"]) <= rejected(reject_rules, "integer:numberofemployees")

    person_org = persons.staged.set_index("source_id")[ORG]
    for key in ("contacts_without_account", "contacts_with_contact_parent"):
        assert (person_org[planted[key]] == PLACEHOLDER_ORG_ID).all(), key
    assert PLACEHOLDER_ORG_ID in set(organizations.staged["source_id"])
    assert set(planted["contacts_with_contact_parent"]) <= rejected(reject_rules, "placeholder_org:parentcustomerid")
    malformed = planted["malformed_email_contact_ids"]
    assert set(malformed) <= rejected(reject_rules, "email:emailaddress3")
    emails = persons.staged.set_index("source_id")["emails"]
    for contact in malformed:
        kept = plain(emails[contact])
        assert [item["label"] for item in kept] == ["work", "home"] and [item["primary"] for item in kept] == [True, False]
    assert set(planted["garbage_phone_contact_ids"]) <= rejected(reject_rules, "phone:telephone1") | rejected(reject_rules, "phone:mobilephone")

    qualified = leads.merged[leads.merged["rule"] == "qualified_lead_into_deal"].set_index("source_id")["into_source_id"].to_dict()
    assert qualified == planted["qualified_lead_opportunities"]
    without_stage = set(planted["opportunities_without_stage"])
    assert without_stage <= rejected(reject_rules, "stage_map:first_stage")
    assert stages["deals"].staged.set_index("source_id").loc[sorted(without_stage), "ref:stage_id:stages"].notna().all()

    products, lines = stages["products"], stages["deal_products"]
    bundle = planted["bundle_product_ids"][0]
    assert bundle in set(products.merged.loc[products.merged["rule"] == "bundle_flattened", "source_id"])
    members = products.staged.set_index("source_id").loc[planted["bundle_member_product_ids"][bundle]]
    assert members["custom:Bundle Pricing"].str.startswith("Part of bundle").all()
    assert set(planted["bundle_line_ids"]) == set(lines.merged.loc[lines.merged["rule"] == "bundle_line_expanded", "source_id"])
    staged_lines = lines.staged.set_index("source_id")
    member_lines = staged_lines.loc[planted["bundle_member_line_ids"]]
    assert member_lines["comments"].str.startswith("Part of bundle").all()
    parents = raw["opportunityproducts"].set_index("opportunityproductid")
    children = parents.loc[planted["bundle_member_line_ids"], "_parentbundleidref_value"]
    shared = (member_lines["item_price"].astype(float) * member_lines["quantity"].astype(float)).groupby(children.to_numpy()).sum()
    assert shared.round(2).to_dict() == parents.loc[shared.index, "baseamount"].round(2).to_dict()
    write_ins = staged_lines.loc[planted["write_in_line_ids"], "ref:product_id:products"]
    assert write_ins.str.startswith("write-in:").all() and set(write_ins) <= set(products.staged["source_id"])

    files = stages["files"]
    assert files.extra["manual_uploads"]["source_id"].tolist() == planted["oversize_attachment_ids"]
    assert set(planted["oversize_attachment_ids"]) <= rejected(reject_rules, "file_size_limit")
    names = files.staged.set_index("source_id").loc[planted["unsafe_filename_annotation_ids"], "file_name"]
    assert not names.str.contains(r'[/\\<>:"|?*]|^\.\.|^(?:CON|PRN|AUX|NUL)\.', regex=True).any()

    projects = organizations.staged["custom:Project IDs (Dynamics)"].dropna()
    assert projects.str.contains("|", regex=False).any()
    assert set("|".join(projects).split("|")) == set(stages["cr7f2_projects"].merged.query("rule == 'custom_entity:cr7f2_projects'")["source_id"])

    assert "person_id" not in stages["activities"].staged.columns  # v2 refuses it: the primary participant sets it
    parties = stages["activities"].extra["participants"].set_index("source_id")
    unresolved = parties.loc[planted["unresolved_party_ids"]]
    assert (unresolved["outcome"] == "note_text").all()
    notes = stages["activities"].staged.set_index("source_id")["note"]
    for party in unresolved.itertuples():
        assert party.address in notes[party.activity]


def test_staged_payloads_validate_against_the_pipedrive_request_schemas(
    migrated: tuple[dict[str, pd.DataFrame], dict[str, ObjectStage], dict[str, Any]],
) -> None:
    _, stages, _ = migrated
    v2 = {"organizations": "/organizations", "persons": "/persons", "deals": "/deals", "activities": "/activities", "products": "/products",
          "deal_products": "/deals/{id}/products"}
    checked = 0
    for name, template in v2.items():
        for row in stages[name].staged.to_dict("records"):
            validate_body("v2", "post", template, body_of(row, drop={"ref:deal_id:deals"} if name == "deal_products" else set()))
            checked += 1
    is_key = re.compile(r"[0-9a-f]{40}").fullmatch
    for row in stages["leads"].staged.to_dict("records"):
        validate_body("v1", "post", "/leads", body_of(row, drop={"is_archived"}, v1_custom=True), allow_extra=lambda key: bool(is_key(key)))
        if row["is_archived"]:
            validate_body("v1", "patch", "/leads/{id}", {"is_archived": True})
        checked += 1
    for row in stages["notes"].staged.to_dict("records"):
        validate_body("v1", "post", "/notes", body_of(row))
        checked += 1
    for row in stages["organizations"].extra["relationships"].to_dict("records"):
        validate_body("v1", "post", "/organizationRelationships", body_of(row))
        checked += 1
    uploads = stages["files"].staged
    parents = uploads[[column for column in uploads.columns if column.startswith("ref:")]].notna().sum(axis=1)
    assert (parents == 1).all() and uploads["file_name"].notna().all() and uploads["size"].notna().all()
    assert checked > 10_000


def body_of(row: dict[str, Any], drop: frozenset[str] | set[str] = frozenset(), v1_custom: bool = False) -> dict[str, Any]:
    """What the loader will send: `ref:` columns as (fake) Pipedrive ids, `custom:` names as (fake) field keys."""
    body: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for column, raw in row.items():
        value = plain(raw)
        if column == "source_id" or column in drop or value is None:
            continue
        if column.startswith("ref:"):
            _, field, target = column.split(":", 2)
            body[field] = fake_ref(field, value)
        elif column in CHOICE_FIELDS:  # the loader sends the option's id for its label
            body[column] = fake_id(value)
        elif column.startswith("custom:"):
            custom[hashlib.sha1(column.encode()).hexdigest()] = value
        else:
            body[column] = value
    if custom and v1_custom:
        body.update(custom)
    elif custom:
        body["custom_fields"] = custom
    return body


# Standard choice fields staged as labels, which payloads turn into the account's option ids.
CHOICE_FIELDS = {"industry"}


def fake_ref(field: str, value: Any) -> Any:
    if field == "participants":
        return [{"person_id": fake_id(person), "primary": index == 0} for index, person in enumerate(value)]
    if field == "label_ids":
        return [str(uuid.uuid5(uuid.NAMESPACE_URL, label)) for label in value]
    if field == "lead_id":
        return str(uuid.uuid5(uuid.NAMESPACE_URL, value))
    return fake_id(value)


def fake_id(source_id: str) -> int:
    return 1 + int(hashlib.sha1(source_id.encode()).hexdigest()[:6], 16)


def all_rejects(stages: dict[str, ObjectStage]) -> pd.DataFrame:
    return pd.concat([stage.rejects for stage in stages.values()], ignore_index=True)


def rejected(rejects: pd.DataFrame, rule: str) -> set[str]:
    return set(rejects.loc[rejects["rule"] == rule, "source_id"])
