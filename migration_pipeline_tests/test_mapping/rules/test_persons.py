"""Contacts -> persons: emails and phones with labels and one primary, field-wise rejects, the placeholder organization."""

from __future__ import annotations

import pandas as pd

from migration_pipeline.mapping.rules.common import Links
from migration_pipeline.mapping.rules.persons import ORG, PLACEHOLDER_ORG_ID, transform_persons
from migration_pipeline_tests.test_mapping.rules.frames import context, currencies, organizations, rejects_of, row, table


def links_with_accounts(*ids: str) -> Links:
    links = Links()
    links.add("account", organizations(*({"accountid": i, "name": i} for i in ids)))
    return links


def contact(contact_id: str, **fields: object) -> dict[str, object]:
    return {"contactid": contact_id, "fullname": f"Person {contact_id}", **fields}


def test_all_emails_and_phones_with_labels_and_exactly_one_primary() -> None:
    rows = [
        contact("all", emailaddress1="a@x.com", emailaddress2="a@home.net", emailaddress3="a@other.org",
                telephone1="+44 20 1234 5678", telephone2="020 1234 0000", mobilephone="0049 170 1234567"),
        contact("later", emailaddress2="b@home.net", mobilephone="(555) 123-4567 x12"),
        contact("none"),
    ]
    stage = transform_persons(table("contacts", *rows), context(), links_with_accounts())
    everything = row(stage, "all")
    assert everything["emails"] == [{"value": "a@x.com", "primary": True, "label": "work"},
                                    {"value": "a@home.net", "primary": False, "label": "home"},
                                    {"value": "a@other.org", "primary": False, "label": "other"}]
    assert everything["phones"] == [{"value": "+44 20 1234 5678", "primary": True, "label": "work"},
                                    {"value": "+49 170 1234567", "primary": False, "label": "mobile"},
                                    {"value": "020 1234 0000", "primary": False, "label": "home"}]
    later = row(stage, "later")
    assert later["emails"] == [{"value": "b@home.net", "primary": True, "label": "home"}]  # the first kept value is primary
    assert later["phones"] == [{"value": "(555) 123-4567 ext. 12", "primary": True, "label": "mobile"}]
    assert row(stage, "none")["emails"] is None and row(stage, "none")["phones"] is None


def test_a_malformed_email_is_rejected_alone_and_the_next_one_becomes_primary() -> None:
    rows = [contact("bad", emailaddress1="jo@@contoso.com", emailaddress2="jo@home.net", emailaddress3="jo at x.com", telephone1="ask for Bob")]
    stage = transform_persons(table("contacts", *rows), context(), links_with_accounts())
    assert row(stage, "bad")["emails"] == [{"value": "jo@home.net", "primary": True, "label": "home"}]
    assert row(stage, "bad")["phones"] is None
    assert rejects_of(stage, "bad") == [("emails", "email:emailaddress1"), ("emails", "email:emailaddress3"), ("phones", "phone:telephone1")]
    values = set(stage.rejects["value"])
    assert {"jo@@contoso.com", "jo at x.com", "ask for Bob"} <= values


def test_a_repeated_address_is_carried_once_and_reported() -> None:
    stage = transform_persons(table("contacts", contact("dup", emailaddress1="Jo@X.com", emailaddress2="jo@x.com")), context(), links_with_accounts())
    assert row(stage, "dup")["emails"] == [{"value": "Jo@X.com", "primary": True, "label": "work"}]
    assert rejects_of(stage, "dup") == [("emails", "email_duplicate:emailaddress2")]


def test_contacts_without_a_migrated_account_go_to_the_placeholder_organization() -> None:
    rows = [
        contact("orphan"),
        contact("child", _parentcustomerid_value="boss", _parentcustomerid_value__table="contact", _parentcustomerid_value__label="Ann Boss"),
        contact("lost", _parentcustomerid_value="deleted-account", _parentcustomerid_value__table="account"),
        contact("employee", _parentcustomerid_value="acme", _parentcustomerid_value__table="account"),
        contact("boss", _parentcustomerid_value="acme", _parentcustomerid_value__table="account"),
    ]
    stage = transform_persons(table("contacts", *rows), context(placeholder_org_name="No company"), links_with_accounts("acme"))
    assert {key: row(stage, key)[ORG] for key in ("orphan", "child", "lost", "employee")} == {
        "orphan": PLACEHOLDER_ORG_ID, "child": PLACEHOLDER_ORG_ID, "lost": PLACEHOLDER_ORG_ID, "employee": "acme"}
    assert row(stage, "child")["custom:Dynamics Parent Contact"] == "Ann Boss (boss)"
    assert rejects_of(stage, "child") == [(ORG, "placeholder_org:parentcustomerid")]
    assert rejects_of(stage, "lost") == [(ORG, "placeholder_org:parentcustomerid")]
    assert rejects_of(stage, "orphan") == []  # nothing of the record is lost
    assert dict(zip(stage.extra["placeholders"]["source_id"], stage.extra["placeholders"]["reason"], strict=True)) == {
        "orphan": "no parent account", "child": "parent is a contact", "lost": "parent account not migrated"}
    placeholder = stage.extra["placeholder_organizations"].to_dict("records")
    assert placeholder == [{"source_id": PLACEHOLDER_ORG_ID, "name": "No company", "owner_id": 99, "custom:Dynamics ID": PLACEHOLDER_ORG_ID}]


def test_names_fall_back_to_first_and_last_and_a_nameless_contact_is_rejected() -> None:
    rows = [contact("parts", fullname=None, firstname=" Ada ", lastname="Lovelace"), contact("nobody", fullname="  ")]
    stage = transform_persons(table("contacts", *rows), context(), links_with_accounts())
    assert row(stage, "parts")["name"] == "Ada Lovelace"
    assert rejects_of(stage, "nobody") == [("*", "required:name")]
    assert list(stage.staged["source_id"]) == ["parts"]
    assert "placeholder_organizations" in stage.extra  # "parts" has no account


def test_custom_fields_and_time() -> None:
    rows = [contact("c", jobtitle="CTO", birthdate="1980-02-30", createdon="2020-01-02T03:04:05Z", address1_city="Paris")]
    stage = transform_persons(table("contacts", *rows), context(), links_with_accounts())
    staged = row(stage, "c")
    assert (staged["custom:Job Title"], staged["custom:Birthday"], staged["add_time"]) == ("CTO", None, "2020-01-02T03:04:05Z")
    assert staged["custom:Postal Address"] == {"value": "Paris", "locality": "Paris"}
    assert rejects_of(stage, "c") == [("custom:Birthday", "date:birthdate")]
    assert isinstance(stage.staged, pd.DataFrame)
