"""Small raw tables in the extractor's shape, for the rule tests: every column a rule reads, None unless given."""

from __future__ import annotations

from typing import Any

import pandas as pd

from migration_pipeline.mapping.rules.common import ObjectStage, RuleContext
from migration_pipeline.mapping.rules.organizations import stage_organizations
from migration_pipeline.mapping.spec import load_object_map
from migration_pipeline.mapping.transform import TransformContext
from migration_pipeline.steps.plan import DEFAULTS_DIR

# The shipped organizations map: what a confirmed plan starts from.
ORGANIZATIONS_MAP = load_object_map(DEFAULTS_DIR / "organizations.yaml")

USD, EUR, JPY = "c-usd", "c-eur", "c-jpy"

COLUMNS: dict[str, list[str]] = {
    "accounts": ["accountid", "name", "accountnumber", "_parentaccountid_value", "websiteurl", "industrycode", "industrycode__label",
                 "numberofemployees", "revenue", "revenue_base", "_transactioncurrencyid_value", "exchangerate", "telephone1",
                 "emailaddress1", "address1_line1", "address1_city", "address1_stateorprovince", "address1_postalcode",
                 "address1_country", "description", "_ownerid_value", "createdon"],
    "contacts": ["contactid", "firstname", "lastname", "fullname", "jobtitle", "_parentcustomerid_value", "_parentcustomerid_value__table",
                 "_parentcustomerid_value__label", "emailaddress1", "emailaddress2", "emailaddress3", "telephone1", "telephone2",
                 "mobilephone", "address1_line1", "address1_city", "address1_postalcode", "address1_country", "birthdate",
                 "_ownerid_value", "createdon"],
    "opportunities": ["opportunityid", "name", "_customerid_value", "_customerid_value__table", "_parentaccountid_value",
                      "_parentcontactid_value", "_transactioncurrencyid_value", "exchangerate", "estimatedvalue", "actualvalue",
                      "closeprobability", "estimatedclosedate", "actualclosedate", "_processid_value", "_stageid_value",
                      "_originatingleadid_value", "description", "_ownerid_value", "statecode", "statuscode__label", "createdon", "modifiedon"],
    "leads": ["leadid", "subject", "firstname", "lastname", "fullname", "companyname", "jobtitle", "emailaddress1", "telephone1",
              "mobilephone", "leadsourcecode__label", "leadqualitycode__label", "_qualifyingopportunityid_value", "_parentaccountid_value",
              "_parentcontactid_value", "_transactioncurrencyid_value", "estimatedamount", "_ownerid_value", "statecode",
              "statuscode__label", "createdon"],
    "transactioncurrencies": ["transactioncurrencyid", "isocurrencycode", "exchangerate"],
    "products": ["productid", "name", "productnumber", "description", "price", "standardcost", "productstructure",
                 "_transactioncurrencyid_value", "statecode__label"],
    "pricelevels": ["pricelevelid", "name", "_transactioncurrencyid_value", "begindate", "statecode"],
    "productpricelevels": ["productpricelevelid", "_pricelevelid_value", "_productid_value", "amount", "_transactioncurrencyid_value"],
    "productassociations": ["productassociationid", "_productid_value", "_associatedproduct_value", "quantity", "productisrequired"],
    "opportunityproducts": ["opportunityproductid", "opportunityproductname", "_opportunityid_value", "_productid_value",
                            "productdescription", "quantity", "priceperunit", "baseamount", "manualdiscountamount", "tax",
                            "lineitemnumber", "_parentbundleidref_value", "_transactioncurrencyid_value"],
    "activities": ["activityid", "subject", "description", "scheduledstart", "scheduledend", "actualstart", "actualend",
                   "actualdurationminutes", "scheduleddurationminutes", "_regardingobjectid_value", "_regardingobjectid_value__table",
                   "_ownerid_value", "statecode", "createdon"],
    "activityparties": ["activitypartyid", "_activityid_value", "_partyid_value", "_partyid_value__table", "_partyid_value__label",
                        "addressused", "participationtypemask"],
    "annotations": ["annotationid", "subject", "notetext", "isdocument", "filename", "mimetype", "filesize", "_objectid_value",
                    "_objectid_value__table", "_ownerid_value", "createdon"],
}


def table(name: str, *rows: dict[str, Any], extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """A raw table `name` with the given rows; unknown keys fail, so a typo cannot pass silently."""
    columns = COLUMNS[name] + list(extra)
    for row in rows:
        unknown = set(row) - set(columns)
        assert not unknown, f"{name}: no column(s) {unknown}"
    return pd.DataFrame([{column: row.get(column) for column in columns} for row in rows], columns=columns, dtype=object)


def currencies() -> pd.DataFrame:
    """USD is the base (rate 1); rates are units per USD, as Dynamics keeps them."""
    return table("transactioncurrencies",
                 {"transactioncurrencyid": USD, "isocurrencycode": "USD", "exchangerate": 1.0},
                 {"transactioncurrencyid": EUR, "isocurrencycode": "EUR", "exchangerate": 0.8},
                 {"transactioncurrencyid": JPY, "isocurrencycode": "JPY", "exchangerate": 150.0})


def context(**fields: Any) -> RuleContext:
    return RuleContext(**{"base_currency": "USD", "owners": {"u1": 11}, "fallback_owner_id": 99, **fields})


def rejects_of(stage: Any, source_id: str) -> list[tuple[str, str]]:
    """(field, rule) of every reject of one record."""
    rows = stage.rejects[stage.rejects["source_id"] == source_id]
    return sorted(zip(rows["field"], rows["rule"], strict=True))


def row(stage: Any, source_id: str) -> dict[str, Any]:
    from migration_pipeline.mapping.payload import plain

    found = stage.staged[stage.staged["source_id"] == source_id]
    assert len(found) == 1, f"{source_id} staged {len(found)} times"
    return {column: plain(value) for column, value in found.iloc[0].items()}


def organizations(*rows: dict[str, Any]) -> ObjectStage:
    """Accounts staged as organizations under the shipped map, for rules that link to them."""
    return stage_organizations(table("accounts", *rows), ORGANIZATIONS_MAP, TransformContext())
