"""Records that existed in Pipedrive before the migration are linked by the stated rule, never duplicated or touched.

Pure tests of the rule (normalisation, one-to-one matching, ambiguity, `none`), of its settings,
and of how the diff reports linked records; then one test against the Pipedrive simulator over
loopback: the seed's name-alike organizations and email-sharing persons are linked to exactly the
planted ids, through list pages only, and stay byte-for-byte as they were.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from pydantic import ValidationError

from migration_pipeline.definitions import build_definitions
from migration_pipeline.errors import ConfigurationError
from migration_pipeline.mapping.spec import DYNAMICS_ID_FIELD
from migration_pipeline.pipedrive.client import PipedriveClient, run_sync
from migration_pipeline.sandbox.runtime import Sandbox, SandboxConfig
from migration_pipeline.settings import Settings, load_settings
from migration_pipeline.steps.existing import (
    EXISTING_TABLE,
    MatchRule,
    existing_ids,
    existing_links,
    link_existing,
    match_records,
    normalize_email,
    normalize_name,
    website_domain,
)
from migration_pipeline.steps.objects import ORGANIZATIONS, PERSONS
from migration_pipeline.steps.plan import confirm_plan, write_plan
from migration_pipeline.steps.provision import payload_fields, provision_custom_fields
from migration_pipeline.steps.transform import stage_everything
from migration_pipeline.steps.verify import verify_object
from migration_pipeline.validation.diff import LINKED, RECORD, diff_object
from migration_pipeline.warehouse.catalog import Warehouse
from migration_pipeline_tests.conftest import settings_for

DEFAULT = MatchRule()
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def person(source_or_id: str, *emails: str, staged: bool = True) -> dict[str, Any]:
    values = [{"value": email, "primary": i == 0, "label": "work"} for i, email in enumerate(emails)]
    return {"source_id": source_or_id, "emails": values} if staged else {"id": source_or_id, "emails": values, "custom_fields": {}}


def org(source_or_id: str, name: str | None, website: str | None = None, staged: bool = True) -> dict[str, Any]:
    key = "source_id" if staged else "id"
    return {key: source_or_id, "name": name, "website": website}


# --- normalisation -------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ("  Ann.Lee@Example.COM ", "ann.lee@example.com"),
    ("ann@example.com", "ann@example.com"),
    ("", None),
    ("   ", None),
    ("not an address", None),
    (None, None),
    (float("nan"), None),
])
def test_emails_are_compared_trimmed_and_case_folded(value: Any, expected: str | None) -> None:
    assert normalize_email(value) == expected


@pytest.mark.parametrize(("left", "right", "same"), [
    ("Acme GmbH", "  ACME   gmbh ", True),  # case and whitespace
    ("Ｂｅｒｇ AG", "Berg AG", True),  # NFKC: full-width letters
    ("Müller\u00a0& Söhne", "müller & söhne", True),  # a no-break space is whitespace
    ("Straße Holding", "STRASSE HOLDING", True),  # case-folding, not just lower-casing
    ("Acme", "Acme GmbH", False),  # no legal-form stripping: a name is the whole name
    ("Acme Inc.", "Acme Inc", False),
])
def test_organization_names_are_normalised_before_comparing(left: str, right: str, same: bool) -> None:
    assert (normalize_name(left) == normalize_name(right)) is same


@pytest.mark.parametrize(("value", "expected"), [
    ("https://www.Acme.com/de/contact?x=1", "acme.com"),
    ("acme.com", "acme.com"),
    ("www.acme.com", "acme.com"),
    ("http://shop.acme.co.uk:8080/", "shop.acme.co.uk"),
    ("https://acme.com.", "acme.com"),
    ("", None),
    (None, None),
    ("not a website", None),
])
def test_website_domains(value: Any, expected: str | None) -> None:
    assert website_domain(value) == expected


# --- matching --------------------------------------------------------------------------------


def test_a_person_matches_on_any_of_its_emails() -> None:
    rows = [person("c1", "ann@home.example", " ANN@Work.Example "), person("c2", "bob@example.com"), person("c3")]
    records = [person("301", "ann@work.example", "ann.lee@other.example", staged=False), person("302", "zed@example.com", staged=False)]
    matching = match_records("persons", rows, records, DEFAULT)
    assert matching.ids == {"c1": "301"}
    assert matching.links["c1"].matched_on == "email:ann@work.example"
    assert matching.ambiguous == []


def test_an_organization_matches_on_its_normalised_name() -> None:
    rows = [org("a1", "Acme  GmbH"), org("a2", "Berg AG"), org("a3", None)]
    records = [org("201", "acme gmbh", staged=False), org("202", "Berg", staged=False)]
    matching = match_records("organizations", rows, records, DEFAULT)
    assert matching.ids == {"a1": "201"}
    assert matching.links["a1"].matched_on == "name:acme gmbh"


def test_two_staged_rows_matching_one_record_are_both_left_unlinked() -> None:
    rows = [person("c1", "shared@example.com"), person("c2", "Shared@Example.com"), person("c3", "own@example.com")]
    records = [person("301", "shared@example.com", staged=False), person("302", "own@example.com", staged=False)]
    matching = match_records("persons", rows, records, DEFAULT)
    assert matching.ids == {"c3": "302"}
    assert len(matching.ambiguous) == 1 and "c1, c2" in matching.ambiguous[0] and "301" in matching.ambiguous[0]


def test_one_row_matching_two_records_is_left_unlinked() -> None:
    # Two Pipedrive persons share the address (Pipedrive allows it), or each holds one of the contact's emails.
    rows = [person("c1", "dup@example.com"), person("c2", "a@example.com", "b@example.com")]
    records = [person("301", "dup@example.com", staged=False), person("302", "dup@example.com", staged=False),
               person("303", "a@example.com", staged=False), person("304", "b@example.com", staged=False)]
    matching = match_records("persons", rows, records, DEFAULT)
    assert matching.ids == {}
    assert len(matching.ambiguous) == 2
    assert "301, 302" in matching.ambiguous[0] and "303, 304" in matching.ambiguous[1]


def test_two_accounts_with_one_name_are_not_linked() -> None:
    rows = [org("a1", "Acme"), org("a2", "ACME")]
    matching = match_records("organizations", rows, [org("201", "Acme", staged=False)], DEFAULT)
    assert matching.ids == {} and len(matching.ambiguous) == 1


def test_a_record_already_linked_to_another_row_is_not_linked_again() -> None:
    matching = match_records("organizations", [org("a2", "Acme")], [org("201", "Acme", staged=False)], DEFAULT, taken={"201": "a1"})
    assert matching.ids == {}
    assert "already linked to a1" in matching.ambiguous[0]


def test_one_row_whose_emails_all_hit_one_record_is_linked_once() -> None:
    rows = [person("c1", "a@example.com", "b@example.com")]
    matching = match_records("persons", rows, [person("301", "b@example.com", "a@example.com", staged=False)], DEFAULT)
    assert matching.ids == {"c1": "301"} and matching.ambiguous == []


def test_name_and_domain_needs_both_to_agree() -> None:
    rule = MatchRule(organizations="name_and_domain")
    rows = [org("a1", "Acme", "https://www.acme.com/en"), org("a2", "Berg", "berg.de"), org("a3", "Cole", None),
            org("a4", "Dorn", "dorn.com")]
    records = [org("201", "acme", "acme.com", staged=False), org("202", "Berg", "berg.com", staged=False),
               org("203", "Cole", "cole.com", staged=False), org("204", "Dorn", None, staged=False)]
    matching = match_records("organizations", rows, records, rule)
    assert matching.ids == {"a1": "201"}  # a different domain, or a missing website on either side, is no match
    assert matching.links["a1"].matched_on == "name_and_domain:acme|acme.com"


def test_name_and_domain_tells_apart_two_companies_of_one_name() -> None:
    rows = [org("a1", "Acme", "acme.com"), org("a2", "Acme", "acme.de")]
    records = [org("201", "Acme", "acme.com", staged=False), org("202", "Acme", "acme.de", staged=False)]
    assert match_records("organizations", rows, records, MatchRule(organizations="name_and_domain")).ids == {"a1": "201", "a2": "202"}
    assert match_records("organizations", rows, records, DEFAULT).ids == {}  # by name alone: ambiguous both ways


@pytest.mark.parametrize(("object_name", "rows", "records"), [
    ("persons", [person("c1", "ann@example.com")], [person("301", "ann@example.com", staged=False)]),
    ("organizations", [org("a1", "Acme")], [org("201", "Acme", staged=False)]),
])
def test_rule_none_links_nothing(object_name: str, rows: list[dict[str, Any]], records: list[dict[str, Any]]) -> None:
    rule = MatchRule(persons="none", organizations="none")
    assert match_records(object_name, rows, records, rule).ids == {}
    assert match_records(object_name, rows, records, DEFAULT).ids  # and the default rule would have linked it


def test_only_persons_and_organizations_are_matched() -> None:
    assert DEFAULT.for_object("deals") == DEFAULT.for_object("products") == "none"
    rows = [{"source_id": "o1", "name": "Acme", "emails": [{"value": "a@example.com"}]}]
    assert match_records("deals", rows, [{"id": "401", "name": "Acme", "emails": [{"value": "a@example.com"}]}], DEFAULT).ids == {}


# --- the rule's settings -------------------------------------------------------------------


def test_the_rule_defaults_to_email_and_name() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert MatchRule.from_settings(settings) == MatchRule(persons="email", organizations="name")


def test_the_rule_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIGRATION_MATCH_PERSONS", " None ")
    monkeypatch.setenv("MIGRATION_MATCH_ORGANIZATIONS", "NAME_AND_DOMAIN")
    assert MatchRule.from_settings(load_settings(_env_file=None)) == MatchRule(persons="none", organizations="name_and_domain")


@pytest.mark.parametrize(("variable", "value"), [("MIGRATION_MATCH_PERSONS", "phone"), ("MIGRATION_MATCH_ORGANIZATIONS", "domain")])
def test_a_bad_rule_names_the_setting(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as error:
        load_settings(_env_file=None)
    assert variable in error.value.message


def test_the_rule_model_refuses_unknown_values() -> None:
    with pytest.raises(ValidationError):
        MatchRule(persons="phone")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        MatchRule(deals="title")  # type: ignore[call-arg]


# --- the diff of linked records ------------------------------------------------------------


def test_the_diff_counts_linked_records_instead_of_comparing_their_fields() -> None:
    body = {"name": "Acme GmbH", "custom_fields": {"k1": "a1"}}
    expected = [("a1", "201", body), ("a2", "10", body), ("a3", "202", body)]
    actual = {"201": {"id": 201, "name": "ACME (ours)", "custom_fields": {}},  # pre-existing: never given the Dynamics values
              "10": {"id": 10, "name": "Other", "custom_fields": {"k1": "a1"}}}  # migrated: a real difference
    result = diff_object("organizations", expected, actual, {"k1": "Dynamics ID"}, linked={"a1", "a3"})
    by_field = result.summary.set_index("field")
    assert by_field.loc[LINKED, ["compared", "equal", "differing", "missing"]].tolist() == [2, 1, 0, 1]
    assert by_field.loc[RECORD, ["compared", "equal"]].tolist() == [1, 1]
    assert result.linked == 2
    rows = result.differences[["source_id", "field", "rule"]].values.tolist()
    assert rows == [["a2", "name", "value"], ["a3", LINKED, "missing"]]  # a linked record that is gone is still reported


def test_the_diff_without_linked_records_is_unchanged() -> None:
    body = {"name": "Acme"}
    result = diff_object("organizations", [("a1", "201", body)], {"201": {"id": 201, "name": "Acme"}}, {})
    assert LINKED not in set(result.summary["field"]) and result.linked == 0 and result.clean


# --- against the Pipedrive simulator ----------------------------------------------------------


def pre_existing(sandbox: Sandbox) -> dict[str, dict[int, str]]:
    """The records the account held before the migration, by table and id, serialised exactly as stored."""
    sim = sandbox.pipedrive_app.state.simulator
    snapshot = sim.snapshot()
    out: dict[str, dict[int, str]] = {}
    for table, seeded in (("organizations", sim.seed.organizations), ("persons", sim.seed.persons), ("deals", sim.seed.deals)):
        ids = {record["id"] for record in seeded}
        out[table] = {r["id"]: json.dumps(r, sort_keys=True, default=str) for r in snapshot[table] if r["id"] in ids}
    return out


def staged_and_provisioned(sandbox: Sandbox, home: Path) -> Settings:
    """Extract, plan, confirm, stage and provision the custom fields: everything the loader needs, nothing loaded."""
    settings = settings_for(sandbox, home)
    extract = build_definitions(settings).resolve_job_def("extract")
    assert extract.execute_in_process(run_config=QUIET, instance=dg.DagsterInstance.ephemeral()).success
    warehouse = Warehouse(settings.migration_home)
    users = run_sync(settings, lambda client: client.users())
    write_plan(warehouse, settings.migration_mappings_dir, users, settings.pipedrive_fallback_owner_email)
    confirm_plan(settings.migration_mappings_dir, confirmed_by="test")
    stage_everything(warehouse, settings.migration_mappings_dir)
    run_sync(settings, lambda client: provision_custom_fields(client, warehouse, settings.migration_mappings_dir))
    return settings


def test_seeded_records_are_linked_to_the_planted_ids_and_left_untouched(tmp_path: Path) -> None:
    with Sandbox(SandboxConfig(records=200, seed=5)) as sandbox:
        settings = staged_and_provisioned(sandbox, tmp_path)
        warehouse = Warehouse(settings.migration_home)
        planted = sandbox.data.pipedrive.planted
        want = {
            "organizations": {source: str(pid) for source, pid in planted["existing_org_ids_by_account"].items()},
            "persons": {source: str(pid) for source, pid in planted["existing_person_ids_by_contact"].items()},
        }
        keys = {item.name: payload_fields(warehouse, item.name).codes[DYNAMICS_ID_FIELD] for item in (ORGANIZATIONS, PERSONS)}
        staged = {item.name: warehouse.read_staged(item.name) for item in (ORGANIZATIONS, PERSONS)}
        assert all(set(want[name]) <= set(staged[name]["source_id"]) for name in want)

        # A record the migration made earlier (it carries a Dynamics ID) named like a planted account is
        # the migration's own, not a candidate: were it one, that account's match would be ambiguous.
        twin_source = next(iter(want["organizations"]))
        twin_name = staged["organizations"].set_index("source_id").loc[twin_source, "name"]
        other_source = str(staged["organizations"].loc[~staged["organizations"]["source_id"].isin(want["organizations"]), "source_id"].iloc[0])

        async def make_twin(client: PipedriveClient) -> Any:
            return await client.create("organizations", {"name": twin_name, "custom_fields": {keys["organizations"]: other_source}})

        run_sync(settings, make_twin)
        before = pre_existing(sandbox)
        spent: dict[str, Any] = {}

        async def link_all(client: PipedriveClient) -> dict[str, dict[str, str]]:
            links = {}
            for item in (ORGANIZATIONS, PERSONS):
                links[item.name] = await link_existing(client, warehouse, item, staged[item.name], keys[item.name], MatchRule(), "run-1")
            spent.update(client.usage.snapshot())
            return links

        links = run_sync(settings, link_all)

        assert links == want
        for name in want:
            idmap = warehouse.idmap(name)
            assert {source: idmap[source] for source in want[name]} == want[name]
            assert existing_links(warehouse, name) == want[name] and existing_ids(warehouse, name) == set(want[name])
        table = warehouse.query(f"SELECT object, source_id, pipedrive_id, matched_on, run_id FROM {EXISTING_TABLE} ORDER BY object, source_id")
        assert len(table) == 6 and set(table["run_id"]) == {"run-1"}
        assert all(row.matched_on.startswith("name:" if row.object == "organizations" else "email:") for row in table.itertuples())

        # Found by list pages only (one page per object at this size), never a search, a GET by id or a write.
        assert spent["requests_by_operation"] == {"GET /api/v2/organizations": 1, "GET /api/v2/persons": 1}
        assert spent["tokens"] == 20
        assert pre_existing(sandbox) == before  # byte for byte, update_time included

        # Linking again links nothing new (the rows are in the ID map) and leaves the tables as they were.
        assert run_sync(settings, link_all) == {"organizations": {}, "persons": {}}
        assert len(warehouse.query(f"SELECT * FROM {EXISTING_TABLE}")) == 6

        # Verify reads the linked organizations back and counts them, without diffing the Dynamics values they never got.
        result = run_sync(settings, lambda client: verify_object(client, warehouse, ORGANIZATIONS))
        assert result.linked == 3
        assert result.summary.set_index("field").loc[LINKED, ["equal", "differing", "missing"]].tolist() == [3, 0, 0]
        assert not result.differences["source_id"].isin(want["organizations"]).any()
        assert pre_existing(sandbox) == before
