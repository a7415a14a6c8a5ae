"""The audit: each analysis on hand-made frames, then `migrate audit` against a 10,000-record sandbox.

The end-to-end test compares `audit.scope` and `reports/scope.md` with the ground truth the
synthetic data records in `dataset.planted`: every table's count, every custom field, and each
planted risk with its exact count.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from migration_pipeline.errors import ConfigurationError
from migration_pipeline.mapping import transforms
from migration_pipeline.sandbox import catalog
from migration_pipeline.sandbox.dataset import DataverseDataset
from migration_pipeline.sandbox.runtime import Sandbox, SandboxConfig
from migration_pipeline.mapping.rules.organizations import find_cycles
from migration_pipeline.steps import audit
from migration_pipeline.warehouse.catalog import Warehouse
from migration_pipeline_tests.conftest import settings_for

A, B, C, D, E = (f"{n}0000000-0000-4000-8000-000000000000" for n in "abcde")
MB = 2**20


# --- circular parent chains -------------------------------------------------------------------


def test_a_cycle_of_three_is_found_once_from_its_smallest_id() -> None:
    assert find_cycles({C: A, A: B, B: C}) == [[A, B, C]]


def test_a_self_parent_is_a_cycle_of_one() -> None:
    assert find_cycles({A: A, B: None}) == [[A]]


def test_a_chain_leading_into_a_loop_reports_only_the_loop() -> None:
    # e -> d -> b -> c -> b: the loop is b, c; d and e merely hang under it.
    assert find_cycles({E: D, D: B, B: C, C: B}) == [[B, C]]


def test_chains_without_loops_and_parents_outside_the_table_are_no_cycles() -> None:
    assert find_cycles({A: None, B: A, C: B, D: "not-extracted"}) == []


def test_two_separate_loops_are_both_listed() -> None:
    assert find_cycles({A: B, B: A, C: D, D: E, E: C}) == [[A, B], [C, D, E]]


def test_a_very_long_chain_ending_in_a_loop_is_walked_without_recursion() -> None:
    n = 200_000
    parents: dict[str, str | None] = {f"{i:06d}": f"{i + 1:06d}" for i in range(n)}
    parents[f"{n:06d}"] = f"{n - 2:06d}"
    assert find_cycles(parents) == [[f"{n - 2:06d}", f"{n - 1:06d}", f"{n:06d}"]]


def test_circular_chain_findings_list_each_loop_with_names_ignoring_guid_case() -> None:
    accounts = pd.DataFrame({
        "accountid": [A, B, C, D],
        "name": ["Alpha", "Beta", "Gamma", "Delta"],
        "_parentaccountid_value": [B.upper(), C, A, None],
    })
    found = audit.circular_chain_findings("accounts", accounts)
    assert list(found["kind"]) == [audit.CIRCULAR_CHAIN]
    assert found.iloc[0]["subject"] == f"{A} -> {B} -> {C} -> {A}"
    assert found.iloc[0]["count"] == 3
    assert found.iloc[0]["detail"].startswith("Alpha -> Beta -> Gamma -> Alpha")


# --- contacts ---------------------------------------------------------------------------------


def test_contacts_without_parent_and_under_another_contact_are_counted_apart() -> None:
    contacts = pd.DataFrame({
        "_parentcustomerid_value": [A, None, None, B, C],
        "_parentcustomerid_value__table": ["account", None, None, "contact", "account"],
    })
    found = audit.contact_parent_findings("contacts", contacts).set_index("kind")["count"]
    assert found[audit.NO_ACCOUNT] == 2
    assert found[audit.CONTACT_PARENT] == 1


def test_contacts_all_under_accounts_give_no_finding() -> None:
    contacts = pd.DataFrame({"_parentcustomerid_value": [A], "_parentcustomerid_value__table": ["account"]})
    assert audit.contact_parent_findings("contacts", contacts).empty


# --- values Pipedrive refuses -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("jo.doe@contoso.com", True),
        (" jo.doe@contoso.co.uk ", True),
        ("o'brien+crm@mail.example.org", True),
        ("jo@@contoso.com", False),
        ("jo at contoso.com", False),
        ("jo@contoso", False),
        ("jo@contoso.com..", False),
        ("jo.contoso.com", False),
        ("@contoso.com", False),
        ("jo..doe@contoso.com", False),
        (".jo@contoso.com", False),
    ],
)
def test_the_email_check_accepts_well_formed_addresses_only(value: str, valid: bool) -> None:
    carried = transforms.email(pd.Series([value]))
    assert (carried.problems.iloc[0] is None) is valid
    assert (carried.values.iloc[0] == value.strip()) is valid


def test_malformed_emails_are_counted_per_column_with_examples() -> None:
    values = pd.Series(["a@b.com", "a at b.com", None, "a@@b.com", "a at b.com"])
    found = audit.rejected_value_findings("contacts", audit.MALFORMED_EMAIL, "emailaddress3", values, transforms.email(values))
    assert found.iloc[0][["entity_set", "kind", "subject", "count"]].tolist() == ["contacts", audit.MALFORMED_EMAIL, "emailaddress3", 3]
    assert "'a at b.com', 'a@@b.com'" in found.iloc[0]["detail"]


def test_invalid_websites_reuse_the_url_transform() -> None:
    values = pd.Series(["https://contoso.com", "contoso.com", "htp://broken-link", "not a website", None])
    found = audit.rejected_value_findings("accounts", audit.INVALID_WEBSITE, "websiteurl", values, transforms.url(values))
    assert found.iloc[0]["count"] == 2


def test_nothing_to_refuse_gives_no_row() -> None:
    values = pd.Series(["https://contoso.com"])
    assert audit.rejected_value_findings("accounts", audit.INVALID_WEBSITE, "websiteurl", values, transforms.url(values)).empty


def test_employee_counts_outside_the_organization_maps_range_are_found() -> None:
    low, high = audit.employee_count_range()
    values = pd.Series([-12, 0, 250, 1_500_000_000, None])
    found = audit.rejected_value_findings("accounts", audit.EMPLOYEES, "numberofemployees", values, transforms.integer(values, low, high))
    assert (low, high) == (0, 10_000_000)
    assert found.iloc[0]["count"] == 2


def test_industry_codes_without_a_pipedrive_option_one_row_per_code() -> None:
    accounts = pd.DataFrame({
        "industrycode": [1, 1, 7, 99, None],
        "industrycode__label": ["Accounting", "Accounting", "Consulting", None, None],
    })
    found = audit.industry_findings("accounts", accounts, pipedrive_options=[" consulting "])
    assert dict(zip(found["subject"], found["count"], strict=True)) == {"Accounting": 2, "code 99": 1}
    assert audit.industry_findings("accounts", accounts, pipedrive_options=())["count"].sum() == 4


def test_only_files_over_the_limit_are_oversize() -> None:
    annotations = pd.DataFrame({
        "annotationid": [A, B, C],
        "filename": ["small.pdf", "exactly.zip", "huge.mov"],
        "filesize": [10 * MB, audit.MAX_FILE_BYTES, audit.MAX_FILE_BYTES + 1],
        "isdocument": [True, True, True],
    })
    found = audit.oversize_attachment_findings("annotations", annotations)
    assert list(found["subject"]) == [C]
    assert "'huge.mov'" in found.iloc[0]["detail"]


# --- currencies and owners --------------------------------------------------------------------


def test_records_per_currency_by_iso_code() -> None:
    currencies = pd.DataFrame({"transactioncurrencyid": [A, B], "isocurrencycode": ["USD", "EUR"], "currencyname": ["US Dollar", "Euro"]})
    records = pd.DataFrame({"_transactioncurrencyid_value": [A, A, B.upper(), None]})
    found = audit.currency_findings("accounts", records, currencies)
    assert dict(zip(found["subject"], found["count"], strict=True)) == {"USD": 2, "EUR": 1, "(none)": 1}


def test_owners_teams_disabled_and_unknown_owners() -> None:
    users = pd.DataFrame({
        "systemuserid": [A, B, C],
        "fullname": ["Ann", "Ben", "Cy"],
        "internalemailaddress": ["ann@x.com", "ben@x.com", "cy@x.com"],
        "isdisabled": pd.array([False, True, True], dtype="boolean"),
    })
    teams = pd.DataFrame({"teamid": [D], "name": ["Key Accounts"]})
    owned = {
        "accounts": pd.DataFrame({"_ownerid_value": [A, A, B, D, D, D, E]}),
        "contacts": pd.DataFrame({"_ownerid_value": [B.upper(), None]}),
    }
    found = audit.owner_findings(owned, users, teams)
    owners = found[found["kind"] == audit.OWNER].set_index(["entity_set", "subject"])["count"]
    assert owners[("accounts", A)] == 2 and owners[("accounts", D)] == 3 and owners[("contacts", B)] == 1
    teams_owned = found[found["kind"] == audit.TEAM_OWNED].set_index("entity_set")["count"]
    assert teams_owned.to_dict() == {"accounts": 3}
    disabled = found[found["kind"] == audit.DISABLED_USER].set_index("subject")["count"]
    assert disabled.to_dict() == {B: 2, C: 0}  # Cy owns nothing and is still listed
    unknown = found[found["kind"] == audit.UNKNOWN_OWNER]
    assert unknown[["entity_set", "count"]].values.tolist() == [["accounts", 1]]


# --- schema-driven findings -------------------------------------------------------------------


def schema_entities() -> pd.DataFrame:
    return pd.DataFrame({
        "logical_name": ["account", "sdkmessageprocessingstep", "new_thing", "new_thing_account"],
        "entity_set_name": ["accounts", "sdkmessageprocessingsteps", "new_things", "new_thing_accountset"],
        "display_name": ["Account", "Step", "Thing", None],
        "is_custom_entity": pd.array([False, False, True, True], dtype="boolean"),
        "is_intersect": pd.array([False, False, False, True], dtype="boolean"),
        "readable": pd.array([True, False, True, True], dtype="boolean"),
    })


def test_record_counts_say_why_a_table_has_none() -> None:
    found = audit.record_findings(schema_entities(), {"accounts": 5, "new_things": 0})
    assert found["count"].astype(object).where(found["count"].notna(), None).tolist() == [5, None, 0, None]
    assert found["detail"].tolist() == ["", audit.NOT_READABLE, "", audit.NOT_EXTRACTED]


def test_custom_tables_and_intersects() -> None:
    found = audit.custom_entity_findings(schema_entities(), {"new_things": 4, "new_thing_accountset": 9})
    assert found[["subject", "count"]].values.tolist() == [["new_thing", 4], ["new_thing_account", 9]]
    assert found.iloc[1]["detail"].startswith("N:N intersect")


def test_custom_fields_count_filled_values_and_name_their_type() -> None:
    attributes = pd.DataFrame({
        "entity": ["account", "account", "account"],
        "logical_name": ["name", "new_tier", "new_partnerid"],
        "column": ["name", "new_tier", "_new_partnerid_value"],
        "attribute_type": ["String", "Picklist", "Lookup"],
        "format": ["Text", None, None],
        "display_name": ["Name", "Tier", "Partner"],
        "is_custom_attribute": pd.array([False, True, True], dtype="boolean"),
    })
    found = audit.custom_field_findings(attributes, schema_entities(), {("accounts", "new_tier"): 7, ("accounts", "_new_partnerid_value"): 2})
    assert found[["subject", "count", "detail"]].values.tolist() == [["new_tier", 7, "Picklist: Tier"], ["new_partnerid", 2, "Lookup: Partner"]]


def test_many_to_many_relationships_count_their_links() -> None:
    relationships = pd.DataFrame({
        "schema_name": ["new_thing_account", "account_parent_account"],
        "relationship_type": ["ManyToManyRelationship", "OneToManyRelationship"],
        "entity1": ["new_thing", None], "entity2": ["account", None], "intersect_entity": ["new_thing_account", None],
    })
    found = audit.many_to_many_findings(relationships, schema_entities(), {"new_thing_accountset": 12})
    assert found[["entity_set", "subject", "count"]].values.tolist() == [["new_thing_accountset", "new_thing_account", 12]]


# --- what must be rebuilt ---------------------------------------------------------------------


def test_workflows_by_category_count_definitions_only() -> None:
    workflows = pd.DataFrame({
        "name": ["Welcome", "Welcome", "Require phone", "Sales"],
        "category": [0, 0, 2, 4],
        "category__label": ["Workflow", "Workflow", None, "Business Process Flow"],
        "type": [1, 2, 1, 1],  # the second row is the activation copy of the first
        "statecode": [1, 1, 0, 1],
    })
    found = audit.workflow_findings("workflows", workflows)
    assert dict(zip(found["subject"], found["count"], strict=True)) == {"Workflow": 1, "Business rule": 1, "Business Process Flow": 1}


def test_plugin_steps_count_customisations_or_say_they_could_not_be_read() -> None:
    steps = pd.DataFrame({"name": ["Ours", "Microsoft's"], "statecode": [0, 0], "customizationlevel": [1, 0]})
    assert audit.plugin_step_findings("sdkmessageprocessingsteps", steps).iloc[0]["count"] == 1
    unreadable = audit.plugin_step_findings("sdkmessageprocessingsteps", None)
    assert pd.isna(unreadable.iloc[0]["count"]) and audit.NOT_READABLE in unreadable.iloc[0]["detail"]


# --- tokens and time --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan", "seats", "budget"),
    [("lite", 5, 150_000), ("growth", 10, 600_000), ("premium", 10, 1_500_000), ("ultimate", 20, 4_200_000), ("professional", 4, 360_000)],
)
def test_the_daily_budget_is_30000_tokens_times_multiplier_times_seats(plan: str, seats: int, budget: int) -> None:
    assert audit.daily_budget(plan, seats) == budget


def test_an_unknown_plan_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="premium"):
        audit.daily_budget("platinum", 10)


def test_creates_are_priced_from_the_cost_table_v2_at_5_and_v1_at_10() -> None:
    creates = {"organizations": ("accounts", 1000), "leads": ("leads", 100), "notes": ("annotations", 10), "files": ("annotations", 3)}
    costs = audit.create_cost_findings(creates).set_index("subject")["count"]
    assert costs.to_dict() == {"organizations": 5000, "leads": 1000, "notes": 100, "files": 30}
    estimate = audit.token_estimate(creates, "premium", 10)
    assert (estimate.tokens, estimate.requests) == (6130, 1113)
    assert estimate.calendar_days == 1 and estimate.days == pytest.approx(6130 / 1_500_000)


def test_a_million_creates_take_days_on_a_small_plan() -> None:
    estimate = audit.token_estimate({"persons": ("contacts", 1_000_000)}, "lite", 5)
    assert estimate.tokens == 5_000_000
    assert estimate.calendar_days == 34  # the reference's worked example: ~34 days


# --- end to end: `migrate audit` against 10,000 records ---------------------------------------


@dataclass
class Audited:
    dataset: DataverseDataset
    home: Path
    output: str
    findings: pd.DataFrame
    report: str
    sandbox: Sandbox


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Audited]:
    """`migrate audit` (the real entry point, in a child process) on a fresh MIGRATION_HOME."""
    with Sandbox(SandboxConfig(records=10_000, seed=42)) as sandbox:
        base = tmp_path_factory.mktemp("audit")
        settings = settings_for(sandbox, base)
        environment = {key: value for key, value in os.environ.items() if not key.startswith(("DYNAMICS_", "PIPEDRIVE_", "MIGRATION_"))}
        environment.update(sandbox.environment(), MIGRATION_HOME=str(settings.migration_home))
        result = subprocess.run([sys.executable, "-m", "migration_pipeline.cli", "audit"], env=environment, cwd=base,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        warehouse = Warehouse(settings.migration_home)
        yield Audited(sandbox.data.dataverse, settings.migration_home, result.stdout, audit.read_findings(warehouse),
                      (warehouse.reports_dir / audit.REPORT_FILE).read_text(encoding="utf-8"), sandbox)


def rows(findings: pd.DataFrame, kind: str, entity_set: str | None = None) -> pd.DataFrame:
    selected = findings[findings["kind"] == kind]
    return selected if entity_set is None else selected[selected["entity_set"] == entity_set]


def test_every_table_is_listed_with_the_sandboxes_exact_count(audited: Audited) -> None:
    records = rows(audited.findings, audit.RECORDS).set_index("entity_set")
    in_scope = {e.entity_set_name: e for e in audited.dataset.entities.values()}  # the organization settings table too (its base currency)
    assert set(records.index) == set(in_scope)
    for entity_set, entity in in_scope.items():
        if entity.readable:
            expected = len(audited.dataset.tables[entity_set])
            assert records.at[entity_set, "count"] == expected, entity_set
            assert re.search(rf"\| {entity_set} +\| {entity.logical_name} +\| {expected:,} +\|", audited.report), entity_set
            assert re.search(rf"{entity_set} +{expected:,} records", audited.output), entity_set
        else:
            assert pd.isna(records.at[entity_set, "count"]) and records.at[entity_set, "detail"] == audit.NOT_READABLE


def test_every_custom_field_and_the_custom_tables_are_listed(audited: Audited) -> None:
    fields = rows(audited.findings, audit.CUSTOM_FIELD).set_index(["entity_set", "subject"])["count"]
    expected = {
        (entity.entity_set_name, attribute.logical_name): int(audited.dataset.tables[entity.entity_set_name][attribute.column].notna().sum())
        for entity in audited.dataset.entities.values() if entity.logical_name != "organization"
        for attribute in entity.attributes if attribute.is_custom
    }
    assert fields.to_dict() == expected
    assert {("accounts", "cr7f2_customertier"), ("accounts", "new_region"), ("contacts", "cr7f2_linkedinurl"),
            ("opportunities", "cr7f2_renewaldate")} <= set(expected)
    for _, column in expected:
        assert f"| {column} " in audited.report
    tables = rows(audited.findings, audit.CUSTOM_ENTITY).set_index("subject")["count"]
    assert tables.to_dict() == {"cr7f2_project": len(audited.dataset.tables["cr7f2_projects"]),
                                "cr7f2_project_account": audited.dataset.planted["project_account_links"]}
    links = rows(audited.findings, audit.N_TO_N)
    assert links[["subject", "count"]].values.tolist() == [["cr7f2_project_account", audited.dataset.planted["project_account_links"]]]


def test_each_planted_risk_with_its_exact_count(audited: Audited) -> None:
    planted, findings = audited.dataset.planted, audited.findings
    (cycle,) = rows(findings, audit.CIRCULAR_CHAIN).itertuples()
    assert set(cycle.subject.split(" -> ")) == set(planted["circular_account_ids"]) and cycle.count == 3
    assert rows(findings, audit.NO_ACCOUNT, "contacts")["count"].sum() == len(planted["contacts_without_account"])
    assert rows(findings, audit.CONTACT_PARENT, "contacts")["count"].sum() == len(planted["contacts_with_contact_parent"])
    assert rows(findings, audit.MALFORMED_EMAIL)["count"].sum() == len(planted["malformed_email_contact_ids"])
    assert set(rows(findings, audit.MALFORMED_EMAIL)["entity_set"]) == {"contacts"}
    assert rows(findings, audit.INVALID_WEBSITE)[["entity_set", "count"]].values.tolist() == [["accounts", len(planted["invalid_website_account_ids"])]]
    assert rows(findings, audit.EMPLOYEES, "accounts")["count"].sum() == len(planted["employee_count_out_of_range_account_ids"])
    assert rows(findings, audit.INDUSTRY, "accounts")["count"].sum() == planted["accounts_with_industry"]
    assert set(rows(findings, audit.DISABLED_USER)["subject"]) == set(planted["disabled_user_ids"])
    assert rows(findings, audit.TEAM_OWNED, "accounts")["count"].sum() == len(planted["team_owned_account_ids"])
    assert rows(findings, audit.TEAM_OWNED, "opportunities")["count"].sum() == len(planted["team_owned_opportunity_ids"])
    for entity_set, key in (("accounts", "accounts_by_currency"), ("opportunities", "opportunities_by_currency")):
        currencies = rows(findings, audit.CURRENCY, entity_set)
        assert dict(zip(currencies["subject"], currencies["count"], strict=True)) == planted[key]
    assert list(rows(findings, audit.OVERSIZE)["subject"]) == planted["oversize_attachment_ids"]


def test_disabled_users_records_owned_match_the_data(audited: Audited) -> None:
    tables = audited.dataset.tables
    owned_sets = ("accounts", "contacts", "opportunities", "leads", "activitypointers", "annotations", "cr7f2_projects")
    disabled = rows(audited.findings, audit.DISABLED_USER).set_index("subject")["count"]
    for user_id in audited.dataset.planted["disabled_user_ids"]:
        assert disabled[user_id] == sum(int((tables[s]["_ownerid_value"] == user_id).sum()) for s in owned_sets)


def test_the_inventory_of_what_must_be_rebuilt(audited: Audited) -> None:
    rebuild = rows(audited.findings, audit.REBUILD)
    workflows = rebuild[rebuild["entity_set"] == "workflows"]
    expected = {catalog.WORKFLOW_CATEGORIES[code]: count for code, count in audited.dataset.planted["workflow_counts_by_category"].items()}
    assert dict(zip(workflows["subject"], workflows["count"], strict=True)) == expected
    # The sandbox's application user may not read plug-in steps (planted: 4 of them): said, not guessed.
    (steps,) = rebuild[rebuild["entity_set"] == "sdkmessageprocessingsteps"].itertuples()
    assert pd.isna(steps.count) and audit.NOT_READABLE in steps.detail
    assert audit.NOT_READABLE in audited.report


def test_the_token_cost_and_calendar_time_at_premium_10_seats(audited: Audited) -> None:
    costs = rows(audited.findings, audit.TOKEN_COST).set_index("subject")["count"]
    tables = audited.dataset.tables
    assert costs["organizations"] == 5 * len(tables["accounts"])
    assert costs["persons"] == 5 * len(tables["contacts"])
    assert costs["activities"] == 5 * sum(len(tables[s]) for s in ("phonecalls", "emails", "tasks", "appointments"))
    assert costs["leads"] == 10 * int((tables["leads"]["statecode"] != 1).sum())
    (total,) = rows(audited.findings, audit.TOKEN_TOTAL).itertuples()
    assert total.count == costs.sum() and total.subject == "premium, 10 seats"
    assert "1,500,000 tokens/day" in total.detail and "1,500,000 tokens/day" in audited.output
    assert f"Scope report: {audited.home / 'reports' / audit.REPORT_FILE}" in audited.output


def test_the_audit_job_materializes_the_schema_and_the_scope_with_metadata(audited: Audited) -> None:
    from migration_pipeline.definitions import build_definitions

    settings = settings_for(audited.sandbox, audited.home.parent)
    job = build_definitions(settings).resolve_job_def("audit")
    config = {"ops": {"audit__scope": {"config": {"plan": "growth", "seats": 3}}}}
    result = job.execute_in_process(run_config=config, instance=dg.DagsterInstance.ephemeral())
    assert result.success
    metadata = {e.materialization.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()}
                for e in result.get_asset_materialization_events()}
    assert metadata["dynamics/schema"]["custom_entities"] == 2
    assert metadata["dynamics/cr7f2_projects"]["dagster/row_count"] == len(audited.dataset.tables["cr7f2_projects"])
    scope = metadata["audit/scope"]
    assert "circular_parent_chain" in scope["findings"] and scope["report"].endswith(audit.REPORT_FILE)
    assert scope["pipedrive_tokens"] == rows(audited.findings, audit.TOKEN_TOTAL)["count"].iloc[0]
    assert "growth budget for 3 seats (180,000 tokens/day)" in scope["estimate"]


def test_an_unknown_plan_stops_migrate_audit_before_any_work(tmp_path: Path) -> None:
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("DYNAMICS_", "PIPEDRIVE_", "MIGRATION_"))}
    result = subprocess.run([sys.executable, "-m", "migration_pipeline.cli", "audit", "--plan", "platinum"],
                            env={**environment, "MIGRATION_HOME": str(tmp_path)}, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == ConfigurationError.exit_code
    assert result.stderr.startswith("Error: Unknown Pipedrive plan 'platinum'.") and "premium" in result.stderr
    assert "Traceback" not in result.stderr
