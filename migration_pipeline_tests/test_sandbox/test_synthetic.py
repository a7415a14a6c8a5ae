"""The synthetic sandbox data: shape, integrity, determinism and every planted case.

The data is the ground truth that the audit, mapping and verification tests compare against,
so these tests check that each planted case really exists and is internally consistent, and that
the tables honour the same metadata the simulator serves.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from migration_pipeline.sandbox import catalog
from migration_pipeline.sandbox.dataset import LOOKUP_LOGICAL_NAME, LOOKUP_TYPES, OPTION_TYPES, PipedrivePlan
from migration_pipeline.sandbox.synthetic import SyntheticData, generate, guids, plan_counts

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", re.IGNORECASE)
URL = re.compile(r"^https?://[^\s/$.?#][^\s]*\.[a-z]{2,}[^\s]*$", re.IGNORECASE)
BUSINESS_SETS = ("accounts", "contacts", "opportunities", "leads", "activitypointers", "annotations", "products",
                 "opportunityproducts")


@pytest.fixture(scope="module", params=[100, 2000], ids=["smallest", "medium"])
def records(request: pytest.FixtureRequest) -> int:
    return request.param


@pytest.fixture(scope="module")
def data(records: int) -> SyntheticData:
    return generate(records, seed=11)


def ids_of(data: SyntheticData, entity_set: str) -> set[str]:
    entity = data.dataverse.entity_by_set(entity_set)
    return set(data.dataverse.tables[entity_set][entity.primary_id_attribute])


def rows(data: SyntheticData, entity_set: str, ids: list[str]) -> pd.DataFrame:
    entity = data.dataverse.entity_by_set(entity_set)
    table = data.dataverse.tables[entity_set]
    return table[table[entity.primary_id_attribute].isin(ids)]


# --- sizes and determinism -------------------------------------------------------------------


@pytest.mark.parametrize("records", [100, 101, 999, 10_000, 1_000_000])
def test_counts_add_up_to_the_requested_records(records: int) -> None:
    counts = plan_counts(records)
    assert sum(counts.values()) == records
    assert all(count >= 4 for count in counts.values())


@pytest.mark.parametrize("records", [99, 1_000_001])
def test_record_count_outside_the_supported_range_is_refused(records: int) -> None:
    with pytest.raises(ValueError, match="records must be between"):
        plan_counts(records)


def test_business_tables_total_the_requested_records(data: SyntheticData, records: int) -> None:
    counts = data.dataverse.counts()
    assert sum(counts[name] for name in BUSINESS_SETS) == records


def test_size_scales_with_records() -> None:
    small, large = generate(100).dataverse.counts(), generate(10_000).dataverse.counts()
    assert sum(large[name] for name in BUSINESS_SETS) == 10_000
    assert large["contacts"] == 2500 and large["accounts"] == 1000
    assert all(large[name] > small[name] for name in BUSINESS_SETS)


def test_same_seed_gives_identical_output() -> None:
    first, second = generate(300, seed=5), generate(300, seed=5)
    assert first.dataverse.tables.keys() == second.dataverse.tables.keys()
    for name, table in first.dataverse.tables.items():
        pd.testing.assert_frame_equal(table, second.dataverse.tables[name], obj=name)
    assert first.dataverse.planted == second.dataverse.planted
    assert first.pipedrive == second.pipedrive
    small = min(first.dataverse.attachments.values(), key=lambda a: a.size)
    key = next(k for k, v in first.dataverse.attachments.items() if v is small)
    assert small.body() == second.dataverse.attachments[key].body()


def test_another_seed_gives_other_data() -> None:
    first, other = generate(300, seed=5), generate(300, seed=6)
    assert set(first.dataverse.tables["accounts"]["accountid"]).isdisjoint(other.dataverse.tables["accounts"]["accountid"])
    assert list(first.dataverse.tables["contacts"]["fullname"]) != list(other.dataverse.tables["contacts"]["fullname"])


def test_guids_are_lower_case_version_4_uuids() -> None:
    values = guids(np.random.default_rng(0), 1000)
    assert len(set(values)) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", v) for v in values)


# --- the catalog -----------------------------------------------------------------------------


def test_catalog_primary_attributes_exist_and_names_are_unique() -> None:
    sets = [entity.entity_set_name for entity in catalog.ENTITIES.values()]
    assert len(sets) == len(set(sets))
    for entity in catalog.ENTITIES.values():
        assert entity.attribute(entity.primary_id_attribute).is_primary_id
        if entity.primary_name_attribute:
            assert entity.attribute(entity.primary_name_attribute).is_primary_name
        names = [a.logical_name for a in entity.attributes]
        assert len(names) == len(set(names)), entity.logical_name


def test_catalog_choices_have_options_and_lookups_have_known_targets() -> None:
    for entity in catalog.ENTITIES.values():
        for attribute in entity.attributes:
            if attribute.attribute_type in OPTION_TYPES:
                assert attribute.options, f"{entity.logical_name}.{attribute.logical_name}"
            if attribute.attribute_type == "Status":
                assert all(option.state is not None for option in attribute.options)
            if attribute.attribute_type in LOOKUP_TYPES:
                assert attribute.targets and set(attribute.targets) <= catalog.ENTITIES.keys()
            if attribute.attribute_type == "String":
                assert attribute.max_length


def test_catalog_carries_the_documented_industry_codes_and_customisations() -> None:
    industry = catalog.ENTITIES["account"].attribute("industrycode")
    assert [o.value for o in industry.options] == list(range(1, 34))
    assert industry.options[0].label == "Accounting" and industry.options[-1].label == "Wholesale"
    assert catalog.ENTITIES["contact"].attribute("cr7f2_linkedinurl").format == "Url"
    assert catalog.ENTITIES["account"].attribute("new_region").attribute_type == "MultiSelectPicklist"
    assert catalog.ENTITIES["opportunity"].attribute("cr7f2_renewaldate").format == "DateOnly"
    assert catalog.ENTITIES["cr7f2_project"].is_custom
    assert catalog.ENTITIES["cr7f2_project_account"].is_intersect
    assert not catalog.ENTITIES["sdkmessageprocessingstep"].readable


def test_relationships_point_at_existing_entities_and_attributes() -> None:
    entities = catalog.ENTITIES
    many_to_many = [r for r in catalog.RELATIONSHIPS if r.relationship_type == "ManyToManyRelationship"]
    assert [r.intersect_entity_name for r in many_to_many] == ["cr7f2_project_account"]
    for r in catalog.RELATIONSHIPS:
        if r.relationship_type == "OneToManyRelationship":
            entities[r.referencing_entity].attribute(r.referencing_attribute)
            assert r.referenced_attribute == entities[r.referenced_entity].primary_id_attribute
        else:
            intersect = entities[r.intersect_entity_name]
            intersect.attribute(r.entity1_intersect_attribute)
            intersect.attribute(r.entity2_intersect_attribute)
    names = [r.schema_name for r in catalog.RELATIONSHIPS]
    assert len(names) == len(set(names))
    assert "contact_customer_accounts" in names and "account_parent_account" in names


# --- tables against the catalog --------------------------------------------------------------


def test_every_column_is_an_attribute_and_every_readable_attribute_a_column(data: SyntheticData) -> None:
    dataset = data.dataverse
    assert {e.entity_set_name for e in dataset.entities.values()} == set(dataset.tables)
    for entity_set, table in dataset.tables.items():
        entity = dataset.entity_by_set(entity_set)
        allowed = {"versionnumber"}
        for attribute in entity.attributes:
            allowed.add(attribute.column)
            if attribute.is_polymorphic:
                allowed.add(attribute.column + LOOKUP_LOGICAL_NAME)
        assert set(table.columns) <= allowed, entity_set
        expected = {a.column for a in entity.attributes if a.is_valid_for_read} - {"documentbody"}
        assert expected <= set(table.columns), (entity_set, expected - set(table.columns))
        assert table[entity.primary_id_attribute].is_unique and table[entity.primary_id_attribute].notna().all()
        if not entity.is_intersect:
            assert {"createdon", "modifiedon"} <= set(table.columns)
            assert (table["modifiedon"] >= table["createdon"]).all(), entity_set


def test_column_types_follow_the_attribute_types(data: SyntheticData) -> None:
    for entity_set, table in data.dataverse.tables.items():
        entity = data.dataverse.entity_by_set(entity_set)
        for attribute in entity.attributes:
            if attribute.column not in table:
                continue
            dtype = str(table[attribute.column].dtype)
            if attribute.attribute_type in ("Integer", "BigInt", "Picklist", "State", "Status"):
                assert dtype == "Int64", (entity_set, attribute.logical_name, dtype)
            elif attribute.attribute_type in ("Money", "Decimal", "Double"):
                assert dtype == "float64", (entity_set, attribute.logical_name, dtype)
            elif attribute.attribute_type == "Boolean":
                assert dtype == "boolean", (entity_set, attribute.logical_name, dtype)
            elif attribute.attribute_type == "DateTime":
                values = table[attribute.column].dropna()
                pattern = r"\d{4}-\d{2}-\d{2}" if attribute.format == "DateOnly" else r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z"
                assert values.str.fullmatch(pattern).all(), (entity_set, attribute.logical_name)
            elif attribute.attribute_type == "String" and attribute.max_length:
                assert (table[attribute.column].dropna().str.len() <= attribute.max_length).all(), attribute.logical_name


def test_every_lookup_refers_to_an_existing_row_of_a_target(data: SyntheticData) -> None:
    dataset = data.dataverse
    keys = {e.logical_name: ids_of(data, e.entity_set_name) for e in dataset.entities.values()}
    for entity_set, table in dataset.tables.items():
        for attribute in dataset.entity_by_set(entity_set).attributes:
            if attribute.attribute_type not in LOOKUP_TYPES:
                continue
            values = table[attribute.column]
            if attribute.is_polymorphic:
                targets = table[attribute.column + LOOKUP_LOGICAL_NAME]
                assert (values.isna() == targets.isna()).all(), (entity_set, attribute.logical_name)
            else:
                targets = pd.Series(attribute.targets[0], index=table.index).where(values.notna())
            for target, group in values.dropna().groupby(targets.dropna()):
                assert target in attribute.targets, (entity_set, attribute.logical_name, target)
                assert set(group) <= keys[target], (entity_set, attribute.logical_name, target)


def test_choice_values_are_options_and_statuses_belong_to_their_state(data: SyntheticData) -> None:
    for entity_set, table in data.dataverse.tables.items():
        entity = data.dataverse.entity_by_set(entity_set)
        for attribute in entity.attributes:
            if attribute.attribute_type not in OPTION_TYPES or attribute.column not in table:
                continue
            allowed = {o.value for o in attribute.options}
            values = table[attribute.column].dropna()
            if attribute.attribute_type == "MultiSelectPicklist":
                values = values.str.split(",").explode().astype(int)
            if entity_set == "activitypointers" and attribute.logical_name == "statuscode":
                continue  # the base table carries each concrete type's own status reasons
            assert set(values) <= allowed, (entity_set, attribute.logical_name, set(values) - allowed)
        if "statuscode" in table and entity_set != "activitypointers":
            state_of = {o.value: o.state for o in entity.attribute("statuscode").options}
            assert (table["statuscode"].map(state_of) == table["statecode"]).all(), entity_set


def test_money_base_values_match_the_record_exchange_rate(data: SyntheticData) -> None:
    tables = data.dataverse.tables
    rates = dict(zip(tables["transactioncurrencies"]["transactioncurrencyid"], tables["transactioncurrencies"]["exchangerate"]))
    for entity_set in ("accounts", "opportunities", "leads", "opportunityproducts", "cr7f2_projects"):
        table = tables[entity_set]
        assert (table["_transactioncurrencyid_value"].map(rates) == table["exchangerate"]).all(), entity_set
        for column in [c for c in table.columns if c + "_base" in table.columns]:
            amount, base = table[column], table[column + "_base"]
            assert (amount.isna() == base.isna()).all()
            assert np.allclose((base * table["exchangerate"]).dropna(), amount.dropna(), rtol=1e-6, atol=0.01), column


# --- planted cases ---------------------------------------------------------------------------


def parents(data: SyntheticData) -> dict[str, str]:
    accounts = data.dataverse.tables["accounts"]
    linked = accounts.dropna(subset=["_parentaccountid_value"])
    return dict(zip(linked["accountid"], linked["_parentaccountid_value"]))


def test_the_circular_account_chain_is_a_cycle_of_three(data: SyntheticData) -> None:
    circle = data.dataverse.planted["circular_account_ids"]
    parent = parents(data)
    assert len(circle) == 3
    walk = [circle[0]]
    for _ in range(3):
        walk.append(parent[walk[-1]])
    assert walk[3] == circle[0] and set(walk[:3]) == set(circle)


def test_every_other_parent_chain_ends_within_four_levels(data: SyntheticData) -> None:
    parent = parents(data)
    circle = set(data.dataverse.planted["circular_account_ids"])
    depths = []
    for account in set(parent) - circle:
        depth, node = 1, account
        while node in parent:
            node, depth = parent[node], depth + 1
            assert depth <= 4
        depths.append(depth)
    assert max(depths) == 4 == data.dataverse.planted["max_account_chain_depth"]
    deep = data.dataverse.planted["deep_chain_account_ids"]
    assert [parent.get(a) for a in deep] == [None, *deep[:-1]]


def test_accounts_span_four_currencies_and_carry_sloppy_values(data: SyntheticData) -> None:
    planted, tables = data.dataverse.planted, data.dataverse.tables
    assert set(planted["accounts_by_currency"]) == {"USD", "EUR", "GBP", "JPY"}
    assert all(count > 0 for count in planted["accounts_by_currency"].values())
    websites = rows(data, "accounts", planted["invalid_website_account_ids"])["websiteurl"]
    assert len(websites) >= 5 and not websites.str.match(URL).any()
    valid = tables["accounts"].drop(websites.index)["websiteurl"].dropna()
    assert valid.str.match(URL).all()
    staff = rows(data, "accounts", planted["employee_count_out_of_range_account_ids"])["numberofemployees"]
    limits = catalog.ENTITIES["account"].attribute("numberofemployees")
    assert sorted(staff) == [-12, 1_500_000_000] and staff.min() < limits.min_value and staff.max() > limits.max_value
    assert tables["accounts"]["industrycode"].notna().sum() == planted["accounts_with_industry"] > 0
    assert len(planted["team_owned_account_ids"]) >= 2
    owners = rows(data, "accounts", planted["team_owned_account_ids"])["_ownerid_value" + LOOKUP_LOGICAL_NAME]
    assert (owners == "team").all()


def test_contact_edge_cases(data: SyntheticData) -> None:
    planted = data.dataverse.planted
    contacts = data.dataverse.tables["contacts"]
    assert rows(data, "contacts", planted["contacts_without_account"])["_parentcustomerid_value"].isna().all()
    children = rows(data, "contacts", planted["contacts_with_contact_parent"])
    assert len(children) >= 2 and (children["_parentcustomerid_value" + LOOKUP_LOGICAL_NAME] == "contact").all()
    assert set(children["_parentcustomerid_value"]) <= set(contacts["contactid"])
    malformed = rows(data, "contacts", planted["malformed_email_contact_ids"])
    assert len(malformed) >= 2
    assert malformed["emailaddress1"].str.match(EMAIL).all() and malformed["emailaddress2"].str.match(EMAIL).all()
    assert not malformed["emailaddress3"].str.match(EMAIL).any()
    for first, second in planted["duplicate_email_contact_pairs"]:
        pair = rows(data, "contacts", [first, second])
        assert pair["emailaddress1"].nunique() == 1 and pair["emailaddress1"].notna().all()
    planted_ids = {c for pair in planted["duplicate_email_contact_pairs"] for c in pair}
    others = contacts[~contacts["contactid"].isin(planted_ids)]["emailaddress1"].dropna()
    assert others.is_unique, "only the planted pairs share an email"


def test_phones_come_in_many_formats_including_garbage(data: SyntheticData) -> None:
    phones = pd.concat([data.dataverse.tables["contacts"][c] for c in ("telephone1", "mobilephone")]).dropna()
    assert phones.str.startswith("+44 20").any() and phones.str.match(r"^\(\d{3}\) \d{3}-\d{4}$").any()
    garbage = rows(data, "contacts", data.dataverse.planted["garbage_phone_contact_ids"])
    assert len(garbage) >= 1
    assert (~garbage["telephone1"].fillna("").str.contains(r"\d{5}") | ~garbage["mobilephone"].fillna("").str.contains(r"\d{5}")).all()


def test_opportunities_cover_every_stage_of_both_processes(data: SyntheticData) -> None:
    planted = data.dataverse.planted
    opportunities = data.dataverse.tables["opportunities"]
    processes = planted["sales_processes"]
    assert set(processes) == {"Enterprise Sales Process", "SMB Sales Process"}
    enterprise, smb = ([s["stagename"] for s in p["stages"]] for p in processes.values())
    assert enterprise != smb
    open_deals = opportunities[opportunities["statecode"] == 0]
    for process in processes.values():
        for stage in process["stages"]:
            in_stage = open_deals[open_deals["_stageid_value"] == stage["processstageid"]]
            assert len(in_stage) >= 1, stage["stagename"]
            assert (in_stage["_processid_value"] == process["workflowid"]).all()
            assert (in_stage["closeprobability"] == stage["probability"]).all()
            assert in_stage["stepname"].str.endswith(stage["stagename"]).all()
    stageless = rows(data, "opportunities", planted["opportunities_without_stage"])
    assert len(stageless) >= 2 and stageless["_stageid_value"].isna().all() and stageless["_processid_value"].isna().all()


def test_won_lost_and_open_opportunities_have_realistic_dates(data: SyntheticData) -> None:
    opportunities = data.dataverse.tables["opportunities"]
    won, lost, open_ = (opportunities[opportunities["statecode"] == s] for s in (1, 2, 0))
    assert len(won) and len(lost) and len(open_)
    assert won["actualclosedate"].notna().all() and won["actualvalue"].notna().all() and (won["statuscode"] == 3).all()
    assert lost["actualclosedate"].notna().all() and lost["statuscode"].isin([4, 5]).all()
    assert open_["actualclosedate"].isna().all()
    assert (won["actualclosedate"] >= won["createdon"].str[:10]).all()
    assert (opportunities["_customerid_value" + LOOKUP_LOGICAL_NAME] == "contact").any()


def test_qualified_leads_point_to_the_opportunity_they_became(data: SyntheticData) -> None:
    planted = data.dataverse.planted
    leads = data.dataverse.tables["leads"]
    assert set(leads["statecode"]) == {0, 1, 2}
    qualified = leads[leads["statecode"] == 1]
    assert set(qualified["leadid"]) == set(planted["qualified_lead_ids"])
    assert qualified["_qualifyingopportunityid_value"].notna().all()
    assert leads[leads["statecode"] != 1]["_qualifyingopportunityid_value"].isna().all()
    opportunities = data.dataverse.tables["opportunities"].set_index("opportunityid")
    origin = opportunities.loc[qualified["_qualifyingopportunityid_value"], "_originatingleadid_value"]
    assert list(origin) == list(qualified["leadid"])


def test_activitypointers_are_the_union_of_the_typed_tables(data: SyntheticData) -> None:
    tables = data.dataverse.tables
    pointers = tables["activitypointers"]
    typed = pd.concat([tables[s][pointers.columns] for s in ("phonecalls", "emails", "tasks", "appointments")],
                      ignore_index=True)
    pd.testing.assert_frame_equal(pointers.sort_values("activityid").reset_index(drop=True),
                                  typed.sort_values("activityid").reset_index(drop=True))
    assert set(pointers["activitytypecode"]) == {"phonecall", "email", "task", "appointment"}


def test_activity_parties_use_the_participation_types_of_each_activity(data: SyntheticData) -> None:
    tables = data.dataverse.tables
    parties = tables["activityparties"].merge(tables["activitypointers"][["activityid", "activitytypecode"]],
                                              left_on="_activityid_value", right_on="activityid")
    masks = parties.groupby("activitytypecode")["participationtypemask"].apply(set).to_dict()
    assert masks["email"] >= {1, 2} and masks["email"] <= {1, 2, 3, 4}
    assert masks["phonecall"] == {1, 2}
    assert masks["appointment"] >= {5, 7} and masks["appointment"] <= {5, 6, 7}
    assert masks["task"] == {9}
    unresolved = rows(data, "activityparties", data.dataverse.planted["unresolved_party_ids"])
    assert len(unresolved) >= 2
    assert unresolved["_partyid_value"].isna().all() and unresolved["addressused"].str.contains("@").all()


def test_products_bundles_price_lists_and_write_ins(data: SyntheticData) -> None:
    planted, tables = data.dataverse.planted, data.dataverse.tables
    (bundle,) = planted["bundle_product_ids"]
    assert rows(data, "products", [bundle])["productstructure"].tolist() == [3]
    associations = tables["productassociations"]
    assert set(associations["_associatedproduct_value"]) == set(planted["bundle_member_product_ids"][bundle])
    assert set(tables["productpricelevels"]["_pricelevelid_value"]) <= set(tables["pricelevels"]["pricelevelid"])
    lines = tables["opportunityproducts"]
    write_ins = rows(data, "opportunityproducts", planted["write_in_line_ids"])
    assert len(write_ins) >= 2
    assert write_ins["_productid_value"].isna().all() and write_ins["isproductoverridden"].all()
    assert write_ins["productdescription"].notna().all()
    assert lines.drop(write_ins.index)["_productid_value"].notna().all()
    bundle_lines = rows(data, "opportunityproducts", planted["bundle_line_ids"])
    members = rows(data, "opportunityproducts", planted["bundle_member_line_ids"])
    assert (bundle_lines["_productid_value"] == bundle).all()
    assert set(members["_parentbundleidref_value"]) == set(bundle_lines["opportunityproductid"])
    assert np.allclose(lines["extendedamount"], lines["baseamount"] - lines["manualdiscountamount"] + lines["tax"])


def test_notes_and_their_lazy_attachments(data: SyntheticData) -> None:
    planted, dataset = data.dataverse.planted, data.dataverse
    notes = dataset.tables["annotations"]
    documents = notes[notes["isdocument"]]
    assert 0 < len(documents) < len(notes)
    assert set(documents["annotationid"]) == set(dataset.attachments)
    for note_id, size in zip(documents["annotationid"], documents["filesize"]):
        assert dataset.attachments[note_id].size == size
    assert (notes["objecttypecode"] == notes["_objectid_value" + LOOKUP_LOGICAL_NAME]).all()
    (oversize,) = planted["oversize_attachment_ids"]
    assert dataset.attachments[oversize].size == PipedrivePlan().max_file_size + 1024 * 1024
    assert dataset.attachments[oversize].size <= dataset.organization.max_upload_file_size
    names = set(rows(data, "annotations", planted["unsafe_filename_annotation_ids"])["filename"])
    assert "../../etc/passwd" in names and any(set(':*?"<>|') <= set(n) for n in names)
    assert any(not n.isascii() for n in names) and any(len(n) > 200 for n in names)
    smallest = documents.loc[documents["filesize"].idxmin()]
    body = dataset.attachments[smallest["annotationid"]].body()
    assert len(body) == smallest["filesize"] and body == dataset.attachments[smallest["annotationid"]].body()


def test_users_teams_and_owners(data: SyntheticData) -> None:
    planted, tables = data.dataverse.planted, data.dataverse.tables
    users = tables["systemusers"].set_index("systemuserid")
    assert users.loc[planted["disabled_user_ids"], "isdisabled"].all()
    assert users.loc[planted["application_user_ids"], "applicationid"].notna().all()
    owned = pd.concat([tables[s]["_ownerid_value"] for s in BUSINESS_SETS if "_ownerid_value" in tables[s]])
    pipedrive_emails = {u["email"].lower() for u in data.pipedrive.users}
    for user_id in planted["unmatched_owner_ids"]:
        assert user_id in set(owned)
        assert users.loc[user_id, "internalemailaddress"].strip().lower() not in pipedrive_emails
    for user_id in planted["email_case_variant_user_ids"] + planted["email_whitespace_variant_user_ids"]:
        stored = users.loc[user_id, "internalemailaddress"]
        assert stored not in pipedrive_emails and stored.strip().lower() in pipedrive_emails
    assert len(planted["team_owned_opportunity_ids"]) >= 1
    assert (tables["teams"]["isdefault"]).sum() == 1


def test_processes_and_plugin_steps_for_the_audit(data: SyntheticData) -> None:
    tables = data.dataverse.tables
    categories = set(tables["workflows"]["category"])
    assert {0, 2, 4} <= categories
    assert (tables["processstages"]["_processid_value"].isin(tables["workflows"]["workflowid"])).all()
    assert len(tables["sdkmessageprocessingsteps"]) == data.dataverse.planted["plugin_step_count"]
    assert not data.dataverse.entity_by_set("sdkmessageprocessingsteps").readable
    organization = tables["organizations"].iloc[0]
    assert organization["organizationid"] == data.dataverse.organization.organization_id
    assert organization["_basecurrencyid_value"] == data.dataverse.organization.base_currency_id


def test_custom_entity_and_its_many_to_many_rows(data: SyntheticData) -> None:
    tables = data.dataverse.tables
    links = tables["cr7f2_project_accountset"]
    assert len(links) == data.dataverse.planted["project_account_links"] > 0
    assert set(links["cr7f2_projectid"]) <= set(tables["cr7f2_projects"]["cr7f2_projectid"])
    assert set(links["accountid"]) <= set(tables["accounts"]["accountid"])
    assert not links.duplicated(["cr7f2_projectid", "accountid"]).any()


# --- the Pipedrive seed ----------------------------------------------------------------------


def test_pipedrive_seed_has_tokens_users_and_the_default_pipeline(data: SyntheticData) -> None:
    seed = data.pipedrive
    assert seed.company_domain == "sandbox"
    tokens = list(seed.api_tokens)
    assert len(tokens) == 3 and all(re.fullmatch(r"[0-9a-f]{40}", t) for t in tokens)
    admin = seed.api_tokens[tokens[0]]
    assert admin == seed.planted["admin_user_id"]
    assert next(u for u in seed.users if u["id"] == admin)["access"][0]["admin"]
    assert {t["key_string"] for t in seed.activity_types} == {"call", "meeting", "task", "deadline", "email", "lunch"}
    assert {"USD", "EUR", "GBP", "JPY"} <= {c["code"] for c in seed.currencies}
    assert [p["name"] for p in seed.pipelines] == ["Pipeline"]
    assert [s["name"] for s in seed.stages] == ["Qualified", "Contact Made", "Demo Scheduled", "Proposal Made",
                                                "Negotiations Started"]
    assert seed.plan.seats >= len(seed.users)


def test_pipedrive_seed_holds_records_that_match_dynamics_ones(data: SyntheticData) -> None:
    seed, dataset = data.pipedrive, data.dataverse
    accounts = dataset.tables["accounts"].set_index("accountid")
    contacts = dataset.tables["contacts"].set_index("contactid")
    orgs = {o["id"]: o for o in seed.organizations}
    for account_id, org_id in seed.planted["existing_org_ids_by_account"].items():
        assert orgs[org_id]["name"] == accounts.loc[account_id, "name"]
    persons = {p["id"]: p for p in seed.persons}
    for contact_id, person_id in seed.planted["existing_person_ids_by_contact"].items():
        assert persons[person_id]["emails"][0]["value"] == contacts.loc[contact_id, "emailaddress1"]
    assert set(seed.planted["unrelated_org_ids"]) <= set(orgs)
    assert {"id", "name", "owner_id", "add_time", "update_time", "is_deleted"} <= set(seed.organizations[0])


def test_pipedrive_seed_can_start_empty() -> None:
    seed = generate(100, pipedrive_existing=False).pipedrive
    assert seed.organizations == [] and seed.persons == [] and seed.deals == []
    assert seed.users and seed.api_tokens
