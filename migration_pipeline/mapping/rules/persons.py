"""Dynamics contacts -> Pipedrive persons.

Rules:
- `name` is the full name, else first and last name joined (cut to 255, reported); a contact
  with neither is not migrated. The owner goes through the owner map; `add_time` keeps
  `createdon` (UTC).
- Emails: emailaddress1 (label `work`), emailaddress2 (`home`), emailaddress3 (`other`). Phones:
  telephone1 (`work`), mobilephone (`mobile`), telephone2 (`home`). Each list has exactly one
  primary: the first value kept in that order. A malformed value is rejected field by field
  (rule `email:<column>` / `phone:<column>`) and the rest of the contact still migrates; a value
  repeated in a later column is carried once and the repeat reported.
- The organization is the parent account (`ref:org_id:organizations`). A contact with no parent,
  whose parent is another contact, or whose parent account is not migrated, is attached to the
  placeholder organization (`PLACEHOLDER_ORG_ID`, named by `RuleContext.placeholder_org_name`),
  never left orphaned. A parent contact is reported (the link is not carried as an org) and
  kept by name and id in "Dynamics Parent Contact".
- Job title, birthday and postal address go to custom fields: Pipedrive's own `job_title`,
  `birthday` and `postal_address` exist only where Contact Sync is enabled.

Extra frames: `placeholder_organizations` (the placeholder organization, as a staged
organizations row, when any person needs it) and `placeholders` (source_id, reason: why each
person is on the placeholder).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from migration_pipeline.mapping.rules import common
from migration_pipeline.mapping.rules.common import (
    DYNAMICS_ID,
    NAME_LIMIT,
    VARCHAR_LIMIT,
    ContactItem,
    Links,
    ObjectStage,
    Outcomes,
    RuleContext,
    ref_column,
    synthetic_id,
)
from migration_pipeline.mapping.spec import DYNAMICS_ID_FIELD, CustomFieldTarget
from migration_pipeline.mapping.transforms import Carried

OBJECT = "persons"
ORG = ref_column("org_id", "organizations")
PLACEHOLDER_ORG_ID = synthetic_id("placeholder", "contacts-without-organization")
EMAILS = (ContactItem("emailaddress1", "work"), ContactItem("emailaddress2", "home"), ContactItem("emailaddress3", "other"))
PHONES = (ContactItem("telephone1", "work"), ContactItem("mobilephone", "mobile"), ContactItem("telephone2", "home"))
ADDRESS_COLUMNS = ("address1_line1", "address1_city", "address1_stateorprovince", "address1_postalcode", "address1_country")

CUSTOM_FIELDS = (
    CustomFieldTarget(name=DYNAMICS_ID_FIELD, field_type="varchar"),
    CustomFieldTarget(name="Job Title", field_type="varchar"),
    CustomFieldTarget(name="Birthday", field_type="date"),
    CustomFieldTarget(name="Postal Address", field_type="address"),
    CustomFieldTarget(name="Dynamics Parent Contact", field_type="varchar"),
)


def transform_persons(contacts: pd.DataFrame, context: RuleContext, links: Links) -> ObjectStage:
    """Every contact staged as a person, or rejected with a reason; `links` says which accounts migrated."""
    contacts = contacts.reset_index(drop=True)
    outcomes = Outcomes(OBJECT)
    ids = contacts["contactid"].astype(str)
    full_name = person_name(contacts)
    staged = common.frame_of({"source_id": ids}, contacts.index)
    staged["name"] = outcomes.carry(common.text(full_name, NAME_LIMIT), ids, "name", full_name, "text:fullname")
    carry = functools.partial(outcomes.carry_column, contacts, ids)
    staged["owner_id"] = carry("_ownerid_value", "owner_id", lambda owners: common.owner(owners, context), "owner")
    staged[ORG], placeholders, parent_contact = organization(contacts, ids, links, outcomes)
    staged["emails"] = contact_items(contacts, ids, EMAILS, common.email, "emails", "email", outcomes)
    staged["phones"] = contact_items(contacts, ids, PHONES, common.phone, "phones", "phone", outcomes)
    staged["add_time"] = carry("createdon", "add_time", common.utc_timestamp, "utc")
    staged[DYNAMICS_ID] = ids
    staged["custom:Job Title"] = carry("jobtitle", "custom:Job Title", common.texts(VARCHAR_LIMIT), "text")
    staged["custom:Birthday"] = carry("birthdate", "custom:Birthday", common.iso_date, "date")
    staged["custom:Postal Address"] = common.address(contacts, ADDRESS_COLUMNS)
    staged["custom:Dynamics Parent Contact"] = parent_contact

    nameless = staged["name"].isna().to_numpy()
    outcomes.reject(ids[nameless], "*", None, "no name (full, first or last); Pipedrive requires one", "required:name")
    placeholders = placeholders[~common.is_in(placeholders["source_id"], ids[nameless])]
    extra = {"placeholders": placeholders.reset_index(drop=True)}
    if len(placeholders):
        extra["placeholder_organizations"] = placeholder_organization(context)
    return outcomes.stage(staged[~nameless], **extra)


def person_name(contacts: pd.DataFrame) -> pd.Series:
    """The full name, else first and last name joined (computed only where the full name is blank)."""
    full = common.trimmed(contacts["fullname"])
    missing = pc.is_null(full)
    if pc.any(missing).as_py():
        rows = contacts[missing.to_numpy(zero_copy_only=False)]
        full = pc.replace_with_mask(full, missing, common.strings(common.joined([rows["firstname"], rows["lastname"]], " ")))
    return common.arrow_series(full, contacts.index)


def organization(contacts: pd.DataFrame, ids: pd.Series, links: Links, outcomes: Outcomes) -> tuple[pd.Series, pd.DataFrame, pd.Series]:
    """(the org link per person, why each placeholder person is there, the parent contact kept as text)."""
    parent = contacts["_parentcustomerid_value"]
    table = contacts["_parentcustomerid_value__table"].astype(object)
    label = contacts["_parentcustomerid_value__label"] if "_parentcustomerid_value__label" in contacts else pd.Series(None, index=contacts.index)
    landed = links.resolve(table, parent)
    to_org = (landed["object"] == "organizations").to_numpy()
    no_parent = parent.isna().to_numpy()
    contact_parent = ~no_parent & (table == "contact").to_numpy()
    lost_account = ~no_parent & ~contact_parent & ~to_org

    outcomes.reject(ids[contact_parent], ORG, parent[contact_parent],
                    "parent is a contact, not an account; attached to the placeholder organization", "placeholder_org:parentcustomerid")
    outcomes.reject(ids[lost_account], ORG, parent[lost_account],
                    "parent account is not migrated; attached to the placeholder organization", "placeholder_org:parentcustomerid")
    on_placeholder = ~to_org
    org = np.where(to_org, landed["source_id"].to_numpy(dtype=object), PLACEHOLDER_ORG_ID)
    reason = np.full(int(on_placeholder.sum()), "no parent account", dtype=object)
    reason[contact_parent[on_placeholder]] = "parent is a contact"
    reason[lost_account[on_placeholder]] = "parent account not migrated"
    placeholders = pd.DataFrame({"source_id": ids[on_placeholder].to_numpy(dtype=object), "reason": reason}, dtype=object)
    parent_text = pd.Series(None, index=contacts.index, dtype=object)
    parent_text[contact_parent] = (label[contact_parent].fillna("").astype(str) + " (" + parent[contact_parent].astype(str) + ")").str.strip()
    return common.plain_series(org, contacts.index), placeholders, parent_text


def contact_items(
    contacts: pd.DataFrame, ids: pd.Series, items: tuple[ContactItem, ...], check: Callable[[pd.Series], Carried], field_name: str,
    rule: str, outcomes: Outcomes,
) -> pd.Series:
    """Emails or phones: each column checked (bad values rejected one by one), then listed with one primary."""
    carried = []
    for item in items:
        column = contacts[item.column] if item.column in contacts else pd.Series(None, index=contacts.index, dtype=object)
        result = check(column)
        outcomes.carry(result, ids, field_name, column, f"{rule}:{item.column}")
        carried.append((item, result))
    return common.contact_list(carried, ids, outcomes, field_name, rule)


def placeholder_organization(context: RuleContext) -> pd.DataFrame:
    """The one organization that holds persons with no migrated account, as a staged organizations row."""
    return pd.DataFrame({
        "source_id": [PLACEHOLDER_ORG_ID],
        "name": [context.placeholder_org_name[:NAME_LIMIT]],
        "owner_id": [context.fallback_owner_id],
        DYNAMICS_ID: [PLACEHOLDER_ORG_ID],
    }, dtype=object)
