"""A small hand-made Dataverse dataset for the simulator's tests.

Deterministic (seeded), built with vectorised numpy so the same builder makes the 100k-row
table of the performance test. Covers: a self-referencing lookup, a polymorphic Customer
lookup, Owner (systemuser or team), choices with state/status, money in two currencies, a
DateOnly column, a Boolean, notes with attachments, a table without change tracking
(`transactioncurrencies`), and one the application user may not read (`workflows`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pandas as pd

from migration_pipeline.sandbox.dataset import (
    Attachment,
    AttributeDef,
    DataverseDataset,
    EntityDef,
    OptionDef,
    OrganizationSettings,
    RelationshipDef,
)
from migration_pipeline.sandbox.dataverse.app import DataverseOptions, DataverseSimulator, create_app
from migration_pipeline.sandbox.serve import LoopbackServer

USD = "11111111-0000-4000-8000-000000000001"
EUR = "11111111-0000-4000-8000-000000000002"
USERS = ["22222222-0000-4000-8000-000000000001", "22222222-0000-4000-8000-000000000002"]
TEAM = "33333333-0000-4000-8000-000000000001"
ORGANIZATION = "44444444-0000-4000-8000-000000000001"
INDUSTRIES = (OptionDef(1, "Accounting"), OptionDef(5, "Building Supply Retail"), OptionDef(33, "Wholesale"))
TIERS = (OptionDef(100000000, "Gold"), OptionDef(100000001, "Silver"))


def _ids(rng: np.random.Generator, count: int) -> list[str]:
    raw = rng.integers(0, 256, size=(count, 16), dtype=np.uint8)
    return [str(uuid.UUID(bytes=bytes(row), version=4)) for row in raw]


def _timestamps(rng: np.random.Generator, count: int, start: str = "2023-01-01") -> pd.Series:
    seconds = rng.integers(0, 365 * 24 * 3600, size=count)
    moments = pd.Timestamp(start, tz="UTC") + pd.to_timedelta(seconds, unit="s")
    return pd.Series(moments.strftime("%Y-%m-%dT%H:%M:%SZ"), dtype="str")


def _common() -> tuple[AttributeDef, ...]:
    return (
        AttributeDef("createdon", "DateTime", "Created On", format="DateAndTime"),
        AttributeDef("modifiedon", "DateTime", "Modified On", format="DateAndTime"),
        AttributeDef("versionnumber", "BigInt", "Version Number"),
    )


def _currencies() -> tuple[EntityDef, pd.DataFrame]:
    entity = EntityDef(
        "transactioncurrency", "transactioncurrencies", "Currency", "Currencies", "transactioncurrencyid", "currencyname",
        (
            AttributeDef("transactioncurrencyid", "Uniqueidentifier", "Currency", is_primary_id=True),
            AttributeDef("currencyname", "String", "Currency Name", max_length=100, is_primary_name=True),
            AttributeDef("isocurrencycode", "String", "Currency Code", max_length=5),
            AttributeDef("currencysymbol", "String", "Currency Symbol", max_length=10),
            AttributeDef("currencyprecision", "Integer", "Currency Precision", min_value=0, max_value=4),
            AttributeDef("exchangerate", "Decimal", "Exchange Rate", precision=10),
            *_common(),
        ),
        9105,
        change_tracking_enabled=False,
    )
    frame = pd.DataFrame(
        {
            "transactioncurrencyid": pd.array([USD, EUR], dtype="str"),
            "currencyname": pd.array(["US Dollar", "Euro"], dtype="str"),
            "isocurrencycode": pd.array(["USD", "EUR"], dtype="str"),
            "currencysymbol": pd.array(["$", "€"], dtype="str"),
            "currencyprecision": pd.array([2, 2], dtype="Int64"),
            "exchangerate": [1.0, 0.92],
            "createdon": pd.array(["2022-01-01T00:00:00Z"] * 2, dtype="str"),
            "modifiedon": pd.array(["2022-01-01T00:00:00Z"] * 2, dtype="str"),
            "versionnumber": pd.array([1, 2], dtype="Int64"),
        }
    )
    return entity, frame


def _users() -> tuple[EntityDef, pd.DataFrame, EntityDef, pd.DataFrame]:
    users = EntityDef(
        "systemuser", "systemusers", "User", "Users", "systemuserid", "fullname",
        (
            AttributeDef("systemuserid", "Uniqueidentifier", "User", is_primary_id=True),
            AttributeDef("fullname", "String", "Full Name", max_length=200, is_primary_name=True),
            AttributeDef("internalemailaddress", "String", "Primary Email", max_length=100, format="Email"),
            AttributeDef("isdisabled", "Boolean", "Status", options=(OptionDef(0, "Enabled"), OptionDef(1, "Disabled"))),
            *_common(),
        ),
        8,
    )
    user_frame = pd.DataFrame(
        {
            "systemuserid": pd.array(USERS, dtype="str"),
            "fullname": pd.array(["Ada Admin", "Bob Seller"], dtype="str"),
            "internalemailaddress": pd.array(["ada@example.com", "bob@example.com"], dtype="str"),
            "isdisabled": pd.array([False, True], dtype="boolean"),
            "createdon": pd.array(["2022-01-01T00:00:00Z"] * 2, dtype="str"),
            "modifiedon": pd.array(["2022-01-01T00:00:00Z"] * 2, dtype="str"),
            "versionnumber": pd.array([3, 4], dtype="Int64"),
        }
    )
    teams = EntityDef(
        "team", "teams", "Team", "Teams", "teamid", "name",
        (
            AttributeDef("teamid", "Uniqueidentifier", "Team", is_primary_id=True),
            AttributeDef("name", "String", "Team Name", max_length=160, is_primary_name=True),
            *_common(),
        ),
        9,
    )
    team_frame = pd.DataFrame(
        {
            "teamid": pd.array([TEAM], dtype="str"),
            "name": pd.array(["Sales Team"], dtype="str"),
            "createdon": pd.array(["2022-01-01T00:00:00Z"], dtype="str"),
            "modifiedon": pd.array(["2022-01-01T00:00:00Z"], dtype="str"),
            "versionnumber": pd.array([5], dtype="Int64"),
        }
    )
    return users, user_frame, teams, team_frame


ACCOUNT = EntityDef(
    "account", "accounts", "Account", "Accounts", "accountid", "name",
    (
        AttributeDef("accountid", "Uniqueidentifier", "Account", is_primary_id=True, required_level="SystemRequired"),
        AttributeDef("name", "String", "Account Name", max_length=160, is_primary_name=True, required_level="ApplicationRequired"),
        AttributeDef("accountnumber", "String", "Account Number", max_length=20),
        AttributeDef("parentaccountid", "Lookup", "Parent Account", targets=("account",)),
        AttributeDef("primarycontactid", "Lookup", "Primary Contact", targets=("contact",)),
        AttributeDef("websiteurl", "String", "Website", max_length=200, format="Url"),
        AttributeDef("industrycode", "Picklist", "Industry", options=INDUSTRIES, option_set_name="account_industrycode"),
        AttributeDef("numberofemployees", "Integer", "Number of Employees", min_value=0, max_value=1_000_000_000),
        AttributeDef("revenue", "Money", "Annual Revenue", precision=2, min_value=0, max_value=100_000_000_000_000),
        AttributeDef("revenue_base", "Money", "Annual Revenue (Base)", precision=2),
        AttributeDef("transactioncurrencyid", "Lookup", "Currency", targets=("transactioncurrency",)),
        AttributeDef("exchangerate", "Decimal", "Exchange Rate", precision=10, min_value=1e-10, max_value=1e11),
        AttributeDef("telephone1", "String", "Main Phone", max_length=50, format="Phone"),
        AttributeDef("emailaddress1", "String", "Email", max_length=100, format="Email"),
        AttributeDef("address1_line1", "String", "Address 1: Street 1", max_length=250),
        AttributeDef("address1_city", "String", "Address 1: City", max_length=80),
        AttributeDef("address1_stateorprovince", "String", "Address 1: State/Province", max_length=50),
        AttributeDef("address1_postalcode", "String", "Address 1: ZIP/Postal Code", max_length=20),
        AttributeDef("address1_country", "String", "Address 1: Country/Region", max_length=80),
        AttributeDef("address2_city", "String", "Address 2: City", max_length=80),
        AttributeDef("description", "Memo", "Description", max_length=2000),
        AttributeDef("ownerid", "Owner", "Owner", targets=("systemuser", "team"), required_level="SystemRequired"),
        AttributeDef("statecode", "State", "Status", options=(OptionDef(0, "Active"), OptionDef(1, "Inactive"))),
        AttributeDef(
            "statuscode", "Status", "Status Reason", options=(OptionDef(1, "Active", state=0), OptionDef(2, "Inactive", state=1))
        ),
        AttributeDef("donotemail", "Boolean", "Do not allow Emails", options=(OptionDef(0, "Allow"), OptionDef(1, "Do Not Allow"))),
        AttributeDef("lastusedincampaign", "DateTime", "Last Date Included in Campaign", format="DateAndTime"),
        AttributeDef("new_tier", "Picklist", "Tier", is_custom=True, options=TIERS, option_set_name="new_tier", is_global_option_set=True),
        AttributeDef("new_founded", "DateTime", "Founded", is_custom=True, format="DateOnly"),
        AttributeDef("new_rating", "Decimal", "Rating", is_custom=True, precision=1, min_value=0, max_value=5),
        *_common(),
    ),
    1,
)

CONTACT = EntityDef(
    "contact", "contacts", "Contact", "Contacts", "contactid", "fullname",
    (
        AttributeDef("contactid", "Uniqueidentifier", "Contact", is_primary_id=True),
        AttributeDef("firstname", "String", "First Name", max_length=50),
        AttributeDef("lastname", "String", "Last Name", max_length=50, required_level="ApplicationRequired"),
        AttributeDef("fullname", "String", "Full Name", max_length=160, is_primary_name=True),
        AttributeDef("emailaddress1", "String", "Email", max_length=100, format="Email"),
        AttributeDef("parentcustomerid", "Customer", "Company Name", targets=("account", "contact")),
        AttributeDef("ownerid", "Owner", "Owner", targets=("systemuser", "team")),
        *_common(),
    ),
    2,
)

ANNOTATION = EntityDef(
    "annotation", "annotations", "Note", "Notes", "annotationid", "subject",
    (
        AttributeDef("annotationid", "Uniqueidentifier", "Note", is_primary_id=True),
        AttributeDef("subject", "String", "Title", max_length=500, is_primary_name=True),
        AttributeDef("notetext", "Memo", "Description", max_length=100000),
        AttributeDef("isdocument", "Boolean", "Is Document"),
        AttributeDef("filename", "String", "File Name", max_length=255),
        AttributeDef("mimetype", "String", "Mime Type", max_length=256),
        AttributeDef("filesize", "Integer", "File Size (Bytes)"),
        AttributeDef("documentbody", "Memo", "Document", max_length=1_073_741_823),
        AttributeDef("objectid", "Lookup", "Regarding", targets=("account", "contact")),
        AttributeDef("objecttypecode", "EntityName", "Object Type"),
        *_common(),
    ),
    5,
)

WORKFLOW = EntityDef(
    "workflow", "workflows", "Process", "Processes", "workflowid", "name",
    (
        AttributeDef("workflowid", "Uniqueidentifier", "Process", is_primary_id=True),
        AttributeDef("name", "String", "Process Name", max_length=100, is_primary_name=True),
        AttributeDef("versionnumber", "BigInt", "Version Number"),
    ),
    4703,
    readable=False,
)

RELATIONSHIPS = [
    RelationshipDef(
        "account_parent_account", "OneToManyRelationship", referenced_entity="account", referenced_attribute="accountid",
        referencing_entity="account", referencing_attribute="parentaccountid",
        referenced_entity_navigation_property_name="account_parent_account",
        referencing_entity_navigation_property_name="parentaccountid",
    ),
    RelationshipDef(
        "contact_customer_accounts", "OneToManyRelationship", referenced_entity="account", referenced_attribute="accountid",
        referencing_entity="contact", referencing_attribute="parentcustomerid",
        referenced_entity_navigation_property_name="contact_customer_accounts",
        referencing_entity_navigation_property_name="parentcustomerid_account",
    ),
    RelationshipDef(
        "account_primary_contact", "OneToManyRelationship", referenced_entity="contact", referenced_attribute="contactid",
        referencing_entity="account", referencing_attribute="primarycontactid",
        referenced_entity_navigation_property_name="account_primary_contact",
        referencing_entity_navigation_property_name="primarycontactid",
    ),
    RelationshipDef(
        "new_account_contact", "ManyToManyRelationship", is_custom=True, entity1_logical_name="account",
        entity2_logical_name="contact", intersect_entity_name="new_account_contact",
        entity1_intersect_attribute="accountid", entity2_intersect_attribute="contactid",
    ),
]


def _accounts(rng: np.random.Generator, count: int, contact_ids: list[str]) -> pd.DataFrame:
    ids = _ids(rng, count)
    index = np.arange(count)
    parent = np.where(rng.random(count) < 0.3, rng.integers(0, count, size=count), -1)
    currency = np.where(rng.random(count) < 0.2, EUR, USD)
    revenue = np.round(rng.random(count) * 1e7, 2)
    revenue[rng.random(count) < 0.1] = np.nan
    rate = np.where(currency == EUR, 0.92, 1.0)
    owner_is_team = rng.random(count) < 0.1
    owners = np.where(owner_is_team, TEAM, np.array(USERS)[rng.integers(0, 2, size=count)])
    cities = np.array(["Seattle", "Redmond", "Zürich", "O'Fallon", "Paris"])
    frame = pd.DataFrame(
        {
            "accountid": pd.array(ids, dtype="str"),
            "name": pd.array([f"Account {i:06d}" for i in index], dtype="str"),
            "accountnumber": pd.array([f"AC-{i:06d}" if i % 7 else None for i in index], dtype="str"),
            "_parentaccountid_value": pd.array([ids[p] if p >= 0 and p != i else None for i, p in enumerate(parent)], dtype="str"),
            "_primarycontactid_value": pd.array(
                [contact_ids[i % len(contact_ids)] if contact_ids and i % 3 == 0 else None for i in index], dtype="str"
            ),
            "websiteurl": pd.array([f"https://a{i}.example.com" for i in index], dtype="str"),
            "industrycode": pd.array(np.array([1, 5, 33])[index % 3], dtype="Int64"),
            "numberofemployees": pd.array(rng.integers(1, 50_000, size=count), dtype="Int64"),
            "revenue": revenue,
            "revenue_base": np.round(revenue / rate, 2),
            "_transactioncurrencyid_value": pd.array(currency, dtype="str"),
            "exchangerate": rate,
            "telephone1": pd.array([f"+1 425 555 {i % 10000:04d}" for i in index], dtype="str"),
            "emailaddress1": pd.array([f"info{i}@a{i}.example.com" for i in index], dtype="str"),
            "address1_line1": pd.array([f"{i} Main Street" for i in index], dtype="str"),
            "address1_city": pd.array(cities[index % len(cities)], dtype="str"),
            "address1_stateorprovince": pd.array(["WA"] * count, dtype="str"),
            "address1_postalcode": pd.array([f"{98000 + i % 1000}" for i in index], dtype="str"),
            "address1_country": pd.array(["United States"] * count, dtype="str"),
            "address2_city": pd.array([None] * count, dtype="str"),
            "description": pd.array([f"Customer since {2000 + i % 20}." for i in index], dtype="str"),
            "_ownerid_value": pd.array(owners, dtype="str"),
            "_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": pd.array(np.where(owner_is_team, "team", "systemuser"), dtype="str"),
            "statecode": pd.array(index % 5 == 4, dtype="Int64"),
            "statuscode": pd.array(np.where(index % 5 == 4, 2, 1), dtype="Int64"),
            "donotemail": pd.array(index % 2 == 0, dtype="boolean"),
            "lastusedincampaign": _timestamps(rng, count),
            "new_tier": pd.array(np.where(index % 4 == 0, None, np.where(index % 2, 100000000, 100000001)), dtype="Int64"),
            "new_founded": pd.array([f"{1950 + i % 70}-0{1 + i % 9}-1{i % 10}" for i in index], dtype="str"),
            "new_rating": np.round(rng.random(count) * 5, 1),
            "createdon": _timestamps(rng, count, "2022-01-01"),
            "modifiedon": _timestamps(rng, count, "2024-01-01"),
            "versionnumber": pd.array(1000 + index, dtype="Int64"),
        }
    )
    frame.loc[frame.index % 11 == 0, "lastusedincampaign"] = None
    return frame


def _contacts(rng: np.random.Generator, count: int, account_ids: list[str]) -> tuple[list[str], pd.DataFrame]:
    ids = _ids(rng, count)
    index = np.arange(count)
    to_contact = index % 5 == 1
    parents = [ids[0] if c else (account_ids[i % len(account_ids)] if account_ids and i % 5 != 2 else None) for i, c in enumerate(to_contact)]
    targets = [None if p is None else ("contact" if c else "account") for p, c in zip(parents, to_contact, strict=True)]
    first = np.array(["Ann", "Ben", "Cleo", "Dev", "Eve"])[index % 5]
    frame = pd.DataFrame(
        {
            "contactid": pd.array(ids, dtype="str"),
            "firstname": pd.array(first, dtype="str"),
            "lastname": pd.array([f"Person{i}" for i in index], dtype="str"),
            "fullname": pd.array([f"{f} Person{i}" for f, i in zip(first, index, strict=True)], dtype="str"),
            "emailaddress1": pd.array([f"p{i}@example.org" for i in index], dtype="str"),
            "_parentcustomerid_value": pd.array(parents, dtype="str"),
            "_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": pd.array(targets, dtype="str"),
            "_ownerid_value": pd.array([USERS[0]] * count, dtype="str"),
            "_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": pd.array(["systemuser"] * count, dtype="str"),
            "createdon": _timestamps(rng, count, "2022-06-01"),
            "modifiedon": _timestamps(rng, count, "2024-02-01"),
            "versionnumber": pd.array(500_000 + index, dtype="Int64"),
        }
    )
    return ids, frame


NOTE_IDS = ["55555555-0000-4000-8000-000000000001", "55555555-0000-4000-8000-000000000002", "55555555-0000-4000-8000-000000000003"]
NOTE_BODY = b"hello, attachment \x00\x01 bytes"


def _annotations(account_ids: list[str]) -> tuple[pd.DataFrame, dict[str, Attachment]]:
    frame = pd.DataFrame(
        {
            "annotationid": pd.array(NOTE_IDS, dtype="str"),
            "subject": pd.array(["Call notes", "Contract", "Logo"], dtype="str"),
            "notetext": pd.array(["Talked about renewal.", None, None], dtype="str"),
            "isdocument": pd.array([False, True, True], dtype="boolean"),
            "filename": pd.array([None, "contract.pdf", "logo.png"], dtype="str"),
            "mimetype": pd.array([None, "application/pdf", "image/png"], dtype="str"),
            "filesize": pd.array([None, len(NOTE_BODY), 4], dtype="Int64"),
            "_objectid_value": pd.array([account_ids[0]] * 3, dtype="str"),
            "_objectid_value@Microsoft.Dynamics.CRM.lookuplogicalname": pd.array(["account"] * 3, dtype="str"),
            "objecttypecode": pd.array(["account"] * 3, dtype="str"),
            "createdon": pd.array(["2024-03-01T09:30:00Z"] * 3, dtype="str"),
            "modifiedon": pd.array(["2024-03-01T09:30:00Z"] * 3, dtype="str"),
            "versionnumber": pd.array([900_000, 900_001, 900_002], dtype="Int64"),
        }
    )
    attachments = {
        NOTE_IDS[1]: Attachment(len(NOTE_BODY), lambda: NOTE_BODY),
        NOTE_IDS[2]: Attachment(4, lambda: b"\x89PNG"),
    }
    return frame, attachments


def make_dataset(accounts: int = 60, contacts: int = 25, seed: int = 7) -> DataverseDataset:
    rng = np.random.default_rng(seed)
    currencies, currency_frame = _currencies()
    users, user_frame, teams, team_frame = _users()
    account_ids = _ids(np.random.default_rng(seed + 1), accounts)
    contact_ids, contact_frame = _contacts(rng, contacts, account_ids)
    account_frame = _accounts(np.random.default_rng(seed + 1), accounts, contact_ids)
    note_frame, attachments = _annotations(account_ids)
    workflow_frame = pd.DataFrame(
        {"workflowid": pd.array([str(uuid.UUID(int=1))], dtype="str"), "name": pd.array(["Secret"], dtype="str"), "versionnumber": pd.array([1], dtype="Int64")}
    )
    entities = {e.logical_name: e for e in (currencies, users, teams, ACCOUNT, CONTACT, ANNOTATION, WORKFLOW)}
    tables = {
        "transactioncurrencies": currency_frame,
        "systemusers": user_frame,
        "teams": team_frame,
        "accounts": account_frame,
        "contacts": contact_frame,
        "annotations": note_frame,
        "workflows": workflow_frame,
    }
    organization = OrganizationSettings(ORGANIZATION, "Sandbox Org", USD, max_upload_file_size=5_242_880, expire_change_tracking_in_days=30)
    return DataverseDataset(entities, list(RELATIONSHIPS), tables, attachments, organization)


# --- serving it ---------------------------------------------------------------------------------

API = "/api/data/v9.2/"
HEADERS = {"Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0"}


@dataclass
class Served:
    """A running simulator: its URL, its in-process controls, and an authenticated client."""

    url: str
    simulator: DataverseSimulator
    options: DataverseOptions
    client: httpx.Client

    def token(self, **overrides: str | None) -> httpx.Response:
        """POST the client-credentials form; `overrides` replace fields (`tenant` the path's tenant)."""
        tenant = overrides.pop("tenant", self.options.tenant_id)
        form = {
            "grant_type": "client_credentials",
            "client_id": self.options.client_id,
            "client_secret": self.options.client_secret,
            "scope": f"{self.url}/.default",
            **overrides,
        }
        return self.client.post(f"/{tenant}/oauth2/v2.0/token", data={k: v for k, v in form.items() if v is not None})

    def get(self, path: str, prefer: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {**HEADERS, **({"Prefer": prefer} if prefer else {}), **kwargs.pop("headers", {})}
        return self.client.get(path if path.startswith("http") else API + path, headers=headers, **kwargs)

    def all_pages(self, path: str, prefer: str | None = None, **kwargs: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Follow nextLink verbatim; return every row and the last page's body."""
        response = self.get(path, prefer, **kwargs)
        rows: list[dict[str, Any]] = []
        while True:
            assert response.status_code == 200, response.text
            body = response.json()
            rows += body["value"]
            if "@odata.nextLink" not in body:
                return rows, body
            response = self.get(body["@odata.nextLink"], prefer)


@contextmanager
def served(dataset: DataverseDataset | None = None, options: DataverseOptions | None = None) -> Iterator[Served]:
    options = options or DataverseOptions()
    app = create_app(dataset or make_dataset(), options)
    with LoopbackServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        running = Served(server.url, app.state.simulator, options, client)
        access_token = running.token().json()["access_token"]
        client.headers["Authorization"] = f"Bearer {access_token}"
        yield running
