"""Dynamics leads -> Pipedrive leads (v1), by state.

The rule, state by state:
- **Open** leads become Pipedrive leads.
- **Qualified** leads become no lead: Dynamics turned each into an opportunity, which migrates
  as a deal and carries the history. The lead is recorded in `merged` (into that deal, rule
  `qualified_lead_into_deal`), the deal keeps the lead's id in "Dynamics Originating Lead", and
  notes and activities about the lead land on the deal. A qualified lead whose opportunity is not
  migrated is rejected with that reason.
- **Disqualified** leads are migrated as archived leads labelled "Disqualified (Dynamics)", with
  the Dynamics status reason ("Lost", "Cannot Contact", "No Longer Interested", "Canceled") in
  "Dynamics Status Reason": the team keeps the history of who was already turned down, and it
  stays out of the leads inbox. `POST /v1/leads` takes no `is_archived`, and Pipedrive refuses
  edits to archived leads, so the loader creates the lead with its label, attaches its notes and
  activities, and archives it last (`PATCH /v1/leads/{id}` with `is_archived: true`).

A Pipedrive lead needs a person or an organization. A lead's person is its Dynamics contact
when it has one that migrated, else a person made from the lead (name, email, phones, job
title; source id `lead-person:<leadid>`). Its organization is its account when it has one that
migrated, else the organization of that company name (matched, spaces and case aside, against
the migrated organizations), else one made per distinct company name (`lead-company:<name>`).

Staged: `title`, `owner_id`, `ref:person_id:persons`, `ref:organization_id:organizations`,
`value` ({amount, currency} in the lead's currency), `ref:label_ids:lead_labels` (label
names, which the loader resolves to the provisioned lead labels' UUIDs), `is_archived` (for
the loader's last step, not the create body), and deal custom fields (leads inherit them).
Extra frames: `persons` and `organizations` (records made for leads, as staged rows of those
objects) and `lead_persons` (source_id = lead id, person = the person's source id).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from migration_pipeline.mapping.rules import common
from migration_pipeline.mapping.rules.common import (
    DYNAMICS_ID,
    MAX_AMOUNT,
    NAME_LIMIT,
    VARCHAR_LIMIT,
    ContactItem,
    Currencies,
    Links,
    ObjectStage,
    Outcomes,
    RuleContext,
    ref_column,
    synthetic_id,
)
from migration_pipeline.mapping.spec import CustomFieldTarget
from migration_pipeline.mapping.transforms import Carried

OBJECT = "leads"
PERSON = ref_column("person_id", "persons")
ORG = ref_column("organization_id", "organizations")
LABELS = ref_column("label_ids", "lead_labels")
PERSON_ORG = ref_column("org_id", "organizations")
DISQUALIFIED_LABEL = "Disqualified (Dynamics)"
OPEN, QUALIFIED, DISQUALIFIED = 0, 1, 2
PERSON_COLUMNS = ["source_id", "name", "owner_id", PERSON_ORG, "emails", "phones", "add_time", DYNAMICS_ID, "custom:Job Title"]

# Leads have no custom fields of their own: these are deal fields (see deals.CUSTOM_FIELDS for the rest).
CUSTOM_FIELDS = (
    CustomFieldTarget(name="Lead Source", field_type="varchar"),
    CustomFieldTarget(name="Lead Rating", field_type="varchar"),
)


def transform_leads(
    leads: pd.DataFrame,
    transactioncurrencies: pd.DataFrame,
    context: RuleContext,
    links: Links,
    organizations: pd.DataFrame | None = None,
) -> ObjectStage:
    """Open and disqualified leads staged, qualified ones merged into their deals.

    `links` must know the migrated deals, persons and organizations; `organizations` (staged:
    source_id, name) lets a lead's company name find its existing organization.
    """
    leads = leads.reset_index(drop=True)
    outcomes = Outcomes(OBJECT)
    ids = leads["leadid"].astype(str)
    state = pd.to_numeric(leads["statecode"], errors="coerce")
    qualified = (state == QUALIFIED).to_numpy()
    merge_qualified(leads[qualified], links, outcomes)
    unknown = (~state.isin([OPEN, QUALIFIED, DISQUALIFIED])).to_numpy()
    outcomes.reject(ids[unknown], "status", state[unknown], "unknown lead state; migrated as an open lead", "status:statecode")

    rows = leads[~qualified].reset_index(drop=True)
    row_ids = ids[~qualified].reset_index(drop=True)
    disqualified = (pd.to_numeric(rows["statecode"], errors="coerce") == DISQUALIFIED).to_numpy()
    title_source = common.first_present(rows["subject"], rows["fullname"], rows["companyname"])
    staged = common.frame_of({"source_id": row_ids}, rows.index)
    staged["title"] = outcomes.carry(common.text(title_source, NAME_LIMIT), row_ids, "title", title_source, "text:subject")
    staged["owner_id"] = outcomes.carry(common.owner(rows["_ownerid_value"], context), row_ids, "owner_id", rows["_ownerid_value"], "owner:ownerid")
    company_orgs, org = organizations_for(rows, row_ids, links, organizations, staged["owner_id"])
    lead_persons, person = persons_for(rows, row_ids, links, org, staged["owner_id"], outcomes)
    staged[PERSON] = person
    staged[ORG] = org
    staged["value"] = lead_value(rows, row_ids, Currencies.from_raw(transactioncurrencies), outcomes)
    staged[LABELS] = common.plain_series([[DISQUALIFIED_LABEL] if flag else None for flag in disqualified], rows.index)
    staged["is_archived"] = common.plain_series([True if flag else None for flag in disqualified], rows.index)
    staged[DYNAMICS_ID] = row_ids
    staged["custom:Dynamics Created On"] = outcomes.carry(common.utc_timestamp(rows["createdon"]), row_ids, "custom:Dynamics Created On",
                                                          rows["createdon"], "utc:createdon")
    staged["custom:Dynamics Status Reason"] = common.text(rows["statuscode__label"], VARCHAR_LIMIT).values
    staged["custom:Lead Source"] = common.text(rows["leadsourcecode__label"], VARCHAR_LIMIT).values
    staged["custom:Lead Rating"] = common.text(rows["leadqualitycode__label"], VARCHAR_LIMIT).values

    unattached = (staged[PERSON].isna() & staged[ORG].isna()).to_numpy()
    untitled = staged["title"].isna().to_numpy()
    outcomes.reject(row_ids[untitled], "*", None, "no topic, name or company; Pipedrive requires a lead title", "required:subject")
    outcomes.reject(row_ids[unattached & ~untitled], "*", None, "no name, email or company to make a person or organization from",
                    "required:person_or_org")
    keep = ~untitled & ~unattached
    lead_persons = lead_persons[common.is_in(lead_persons["source_id"], row_ids[keep])]
    made_persons = lead_persons[lead_persons["made"]].drop(columns="made")
    used_orgs = set(staged.loc[keep, ORG].dropna()) | set(made_persons[PERSON_ORG].dropna())
    return outcomes.stage(
        staged[keep],
        persons=made_persons.drop(columns="source_id").rename(columns={"person": "source_id"}).reset_index(drop=True)[PERSON_COLUMNS],
        organizations=company_orgs[company_orgs["source_id"].isin(used_orgs)].reset_index(drop=True),
        lead_persons=lead_persons[["source_id", "person"]].reset_index(drop=True),
    )


def merge_qualified(qualified: pd.DataFrame, links: Links, outcomes: Outcomes) -> None:
    """Qualified leads fold into the deal of their qualifying opportunity."""
    ids = qualified["leadid"].astype(str)
    opportunity = qualified["_qualifyingopportunityid_value"]
    deal = links.resolve("opportunity", opportunity)
    found = (deal["object"] == "deals").to_numpy()
    outcomes.merge(ids[found], "deals", deal["source_id"][found], "qualified_lead_into_deal")
    outcomes.reject(ids[~found], "*", opportunity[~found], "qualified, but its qualifying opportunity is not migrated", "qualified_lead")


def organizations_for(
    rows: pd.DataFrame, ids: pd.Series, links: Links, organizations: pd.DataFrame | None, owners: pd.Series
) -> tuple[pd.DataFrame, pd.Series]:
    """(organizations made for company names, the organization of each lead)."""
    account = links.resolve("account", rows["_parentaccountid_value"])["source_id"]
    company = common.normalized_name(rows["companyname"])
    by_name: dict[str, str] = {}
    if organizations is not None and len(organizations):
        names = common.normalized_name(organizations["name"])
        for source_id, name in sorted(zip(organizations["source_id"].astype(str), names, strict=True)):
            if name is not None:
                by_name.setdefault(name, source_id)  # the same name twice: the smallest id, every run
    existing = company.map(lambda name: by_name.get(name) if name else None)
    made = company.map(lambda name: synthetic_id("lead-company", name) if name else None)
    org = common.plain_series(account.where(account.notna(), existing.where(existing.notna(), made)))
    needs = account.isna() & existing.isna() & made.notna()
    first = pd.DataFrame({"source_id": made[needs], "name": rows["companyname"][needs], "owner_id": owners[needs], "lead": ids[needs]})
    first = first.sort_values(["source_id", "lead"]).drop_duplicates("source_id")
    company_orgs = pd.DataFrame({
        "source_id": first["source_id"].to_numpy(dtype=object),
        "name": common.text(first["name"], NAME_LIMIT).values.astype(object).to_numpy(),
        "owner_id": common.plain_series(first["owner_id"]).to_numpy(),
        DYNAMICS_ID: first["source_id"].to_numpy(dtype=object),
    }, dtype=object)
    return company_orgs, org


def persons_for(
    rows: pd.DataFrame, ids: pd.Series, links: Links, org: pd.Series, owners: pd.Series, outcomes: Outcomes
) -> tuple[pd.DataFrame, pd.Series]:
    """(a row per lead: its person's source id and, for persons made here, their staged fields; the person link)."""
    contact = links.resolve("contact", rows["_parentcontactid_value"])["source_id"]
    name = common.first_present(rows["fullname"], common.joined([rows["firstname"], rows["lastname"]], " "), rows["emailaddress1"])
    name = common.text(name, NAME_LIMIT).values
    made = contact.isna().to_numpy() & name.notna().to_numpy()
    person = common.plain_series(contact.where(~made, [synthetic_id("lead-person", value) for value in ids]))
    emails = []
    for item in (ContactItem("emailaddress1", "work"),):
        emails.append((item, _checked(common.email, rows, ids, item.column, "person.emails", "email", outcomes, made)))
    phones = []
    for item in (ContactItem("telephone1", "work"), ContactItem("mobilephone", "mobile")):
        phones.append((item, _checked(common.phone, rows, ids, item.column, "person.phones", "phone", outcomes, made)))
    frame = pd.DataFrame({"source_id": ids, "person": person, "made": made}, index=rows.index)
    frame["name"] = name
    frame["owner_id"] = owners
    frame[PERSON_ORG] = org
    frame["emails"] = common.contact_list(emails, ids, outcomes, "person.emails", "email")
    frame["phones"] = common.contact_list(phones, ids, outcomes, "person.phones", "phone")
    frame["add_time"] = common.utc_timestamp(rows["createdon"]).values
    frame[DYNAMICS_ID] = person
    frame["custom:Job Title"] = common.text(rows["jobtitle"], VARCHAR_LIMIT).values
    return frame, person.where(person.notna(), None)


def _checked(check: Callable[[pd.Series], Carried], rows: pd.DataFrame, ids: pd.Series, column: str, field_name: str, rule: str,
             outcomes: Outcomes, made: np.ndarray) -> Carried:
    """One contact detail of the persons made for leads, with bad values reported on the lead."""
    values = rows[column] if column in rows else pd.Series(None, index=rows.index, dtype=object)
    carried = check(values)
    carried = Carried(carried.values.where(made), carried.problems.where(made, None))
    outcomes.carry(carried, ids, field_name, values, f"{rule}:{column}")
    return carried


def lead_value(rows: pd.DataFrame, ids: pd.Series, currencies: Currencies, outcomes: Outcomes) -> pd.Series:
    """{amount, currency} in the lead's own currency, or None."""
    amount = pd.to_numeric(rows["estimatedamount"], errors="coerce").astype(float)
    currency = currencies.code_of(rows["_transactioncurrencyid_value"])
    no_currency = (amount.notna() & currency.isna()).to_numpy()
    out_of_range = (amount.notna() & ((amount < 0) | (amount > MAX_AMOUNT))).to_numpy()
    outcomes.reject(ids[no_currency], "value", amount[no_currency], "amount with no known currency", "value:transactioncurrencyid")
    outcomes.reject(ids[out_of_range & ~no_currency], "value", amount[out_of_range & ~no_currency], f"amount outside [0, {MAX_AMOUNT}]",
                    "value:range")
    keep = amount.notna().to_numpy() & ~no_currency & ~out_of_range
    return common.plain_series([{"amount": float(a), "currency": c} if k else None for a, c, k in zip(amount, currency, keep, strict=True)],
                               rows.index)
