"""Leads by state: open -> lead, qualified -> merged into its deal, disqualified -> archived lead with a label."""

from __future__ import annotations

from migration_pipeline.mapping.rules.common import Links
from migration_pipeline.mapping.rules.deals import transform_deals
from migration_pipeline.mapping.rules.leads import DISQUALIFIED_LABEL, LABELS, ORG, PERSON, transform_leads
from migration_pipeline.mapping.rules.persons import transform_persons
from migration_pipeline_tests.test_mapping.rules.frames import EUR, context, currencies, organizations, rejects_of, row, table


def setup() -> tuple[Links, object]:
    links = Links()
    accounts = organizations({"accountid": "acme", "name": "Acme Corp"})
    links.add("account", accounts)
    links.add("contact", transform_persons(table("contacts", {"contactid": "ann", "fullname": "Ann"}), context(), links))
    links.add("opportunity", transform_deals(table("opportunities", {"opportunityid": "deal-1", "name": "Deal", "statecode": 0}),
                                             currencies(), context(), links))
    return links, accounts


def lead(lead_id: str, state: int, **fields: object) -> dict[str, object]:
    return {"leadid": lead_id, "subject": f"Lead {lead_id}", "fullname": "Bo Lead", "statecode": state, **fields}


def test_qualified_leads_merge_into_their_deal_and_disqualified_ones_are_archived_with_a_label() -> None:
    links, accounts = setup()
    rows = [
        lead("open", 0, companyname="  acme CORP ", emailaddress1="bo@acme.com", telephone1="n/a", estimatedamount=100.0,
             _transactioncurrencyid_value=EUR, statuscode__label="New"),
        lead("qualified", 1, _qualifyingopportunityid_value="deal-1"),
        lead("qualified-lost", 1, _qualifyingopportunityid_value="deleted"),
        lead("disqualified", 2, _parentcontactid_value="ann", companyname="Newco", statuscode__label="Cannot Contact"),
    ]
    stage = transform_leads(table("leads", *rows), currencies(), context(), links, accounts.staged[["source_id", "name"]])
    assert stage.merged[["source_id", "into_object", "into_source_id", "rule"]].to_dict("records") == [
        {"source_id": "qualified", "into_object": "deals", "into_source_id": "deal-1", "rule": "qualified_lead_into_deal"}]
    assert rejects_of(stage, "qualified-lost") == [("*", "qualified_lead")]
    assert sorted(stage.staged["source_id"]) == ["disqualified", "open"]

    opened, dropped = row(stage, "open"), row(stage, "disqualified")
    assert (opened[LABELS], opened["is_archived"], opened["value"]) == (None, None, {"amount": 100.0, "currency": "EUR"})
    assert opened[ORG] == "acme"  # the company name found the migrated organization
    assert opened[PERSON] == "lead-person:open"
    assert (dropped[LABELS], dropped["is_archived"], dropped["custom:Dynamics Status Reason"]) == ([DISQUALIFIED_LABEL], True, "Cannot Contact")
    assert (dropped[PERSON], dropped[ORG]) == ("ann", "lead-company:newco")

    made = stage.extra["persons"].set_index("source_id")
    assert list(made.index) == ["lead-person:open"]  # "disqualified" has its contact
    assert made.loc["lead-person:open", "emails"] == [{"value": "bo@acme.com", "primary": True, "label": "work"}]
    assert rejects_of(stage, "open") == [("person.phones", "phone:telephone1")]
    assert stage.extra["organizations"]["source_id"].tolist() == ["lead-company:newco"]
    assert dict(zip(stage.extra["lead_persons"]["source_id"], stage.extra["lead_persons"]["person"], strict=True)) == {
        "open": "lead-person:open", "disqualified": "ann"}


def test_a_lead_with_nothing_to_attach_to_is_rejected() -> None:
    links, _ = setup()
    stage = transform_leads(table("leads", lead("empty", 0, fullname=None, subject="Hello")), currencies(), context(), links)
    assert rejects_of(stage, "empty") == [("*", "required:person_or_org")]
    assert stage.staged.empty and stage.extra["persons"].empty
