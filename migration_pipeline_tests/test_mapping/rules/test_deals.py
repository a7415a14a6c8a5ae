"""Opportunities -> deals: stages through the stage map, status and times, value, links."""

from __future__ import annotations

from migration_pipeline.mapping.rules.common import Links
from migration_pipeline.mapping.rules.deals import ORG, PERSON, STAGE, transform_deals
from migration_pipeline.mapping.rules.persons import transform_persons
from migration_pipeline.mapping.stages import PipelineEntry, StageEntry, StageMap
from migration_pipeline_tests.test_mapping.rules.frames import EUR, USD, context, currencies, organizations, rejects_of, row, table

STAGE_MAP = StageMap(pipelines=[
    PipelineEntry(dynamics_process_id="p-ent", dynamics_process="Enterprise", pipedrive_pipeline="Enterprise", stages=[
        StageEntry(dynamics_stage_id="s-qualify", dynamics_stage="Qualify", pipedrive_stage="Qualify"),
        StageEntry(dynamics_stage_id="s-close", dynamics_stage="Close", pipedrive_stage="Closing")]),
    PipelineEntry(dynamics_process_id="p-smb", dynamics_process="SMB", pipedrive_pipeline="SMB", stages=[
        StageEntry(dynamics_stage_id="s-demo", dynamics_stage="Demo", pipedrive_stage="Demo")]),
])


def links() -> Links:
    found = Links()
    found.add("account", organizations({"accountid": "acme", "name": "Acme"}))
    found.add("contact", transform_persons(table("contacts", {"contactid": "ann", "fullname": "Ann"}), context(), found))
    return found


def opportunity(opportunity_id: str, **fields: object) -> dict[str, object]:
    return {"opportunityid": opportunity_id, "name": f"Deal {opportunity_id}", "statecode": 0, "_transactioncurrencyid_value": USD, **fields}


def test_stages_go_through_the_map_and_no_stage_means_the_first_stage_reported() -> None:
    rows = [
        opportunity("mapped", _processid_value="p-smb", _stageid_value="s-demo"),
        opportunity("merged-name", _processid_value="p-ent", _stageid_value="s-close"),
        opportunity("no-stage", _processid_value="p-smb"),
        opportunity("nothing"),
        opportunity("unknown", _processid_value="p-ent", _stageid_value="s-gone"),
    ]
    stage = transform_deals(table("opportunities", *rows), currencies(), context(stage_map=STAGE_MAP), links())
    assert {key: row(stage, key)[STAGE] for key in ("mapped", "merged-name", "no-stage", "nothing", "unknown")} == {
        "mapped": "SMB/Demo", "merged-name": "Enterprise/Closing", "no-stage": "SMB/Demo", "nothing": "Enterprise/Qualify", "unknown": None}
    assert rejects_of(stage, "no-stage") == [(STAGE, "stage_map:first_stage")]
    assert rejects_of(stage, "nothing") == [(STAGE, "stage_map:first_stage")]
    assert rejects_of(stage, "unknown") == [(STAGE, "stage_map:stageid")]


def test_won_and_lost_carry_their_times_and_reason_and_are_archive_candidates() -> None:
    rows = [
        opportunity("won", statecode=1, actualclosedate="2024-05-06", estimatedvalue=100.0, actualvalue=120.0, statuscode__label="Won"),
        opportunity("lost", statecode=2, actualclosedate="2024-05-07", estimatedvalue=50.0, statuscode__label="Out-Sold", closeprobability=0),
        opportunity("lost-undated", statecode=2, modifiedon="2024-06-01T08:09:10Z", statuscode__label="Canceled"),
        opportunity("open", estimatedvalue=10.0, estimatedclosedate="2025-01-31", closeprobability=40, statuscode__label="In Progress"),
    ]
    stage = transform_deals(table("opportunities", *rows), currencies(), context(stage_map=STAGE_MAP), links())
    won, lost, undated, still_open = (row(stage, key) for key in ("won", "lost", "lost-undated", "open"))
    assert (won["status"], won["won_time"], won["close_time"], won["lost_time"], won["value"]) == (
        "won", "2024-05-06T12:00:00Z", "2024-05-06T12:00:00Z", None, 120.0)
    assert (lost["status"], lost["lost_time"], lost["won_time"], lost["lost_reason"], lost["probability"]) == (
        "lost", "2024-05-07T12:00:00Z", None, "Out-Sold", 0)
    assert undated["close_time"] == "2024-06-01T08:09:10Z" and rejects_of(stage, "lost-undated") == [
        ("close_time", "close_time:actualclosedate"), (STAGE, "stage_map:first_stage")]
    assert (still_open["status"], still_open["close_time"], still_open["lost_reason"], still_open["expected_close_date"],
            still_open["probability"]) == ("open", None, None, "2025-01-31", 40)
    assert still_open["custom:Dynamics Status Reason"] == "In Progress"
    assert sorted(stage.extra["archive_candidates"]["source_id"]) == ["lost", "lost-undated", "won"]


def test_value_currency_created_on_and_links() -> None:
    rows = [
        opportunity("eur", estimatedvalue=5060.0, _transactioncurrencyid_value=EUR, createdon="2020-07-10T15:39:05Z",
                    _parentaccountid_value="acme", _parentcontactid_value="ann"),
        opportunity("by-contact", _customerid_value="ann", _customerid_value__table="contact"),
        opportunity("lost-link", _parentaccountid_value="gone"),
        opportunity("untitled", name=None),
    ]
    stage = transform_deals(table("opportunities", *rows), currencies(), context(stage_map=STAGE_MAP), links())
    eur = row(stage, "eur")
    assert (eur["value"], eur["currency"], eur["custom:Dynamics Created On"], eur[ORG], eur[PERSON]) == (
        5060.0, "EUR", "2020-07-10T15:39:05Z", "acme", "ann")
    assert (row(stage, "by-contact")[PERSON], row(stage, "by-contact")[ORG]) == ("ann", None)
    assert (ORG, "link:_parentaccountid_value") in rejects_of(stage, "lost-link")
    assert rejects_of(stage, "untitled") == [("*", "required:name"), (STAGE, "stage_map:first_stage")]
    assert "untitled" not in set(stage.staged["source_id"])


def test_without_a_stage_map_every_stage_is_reported() -> None:
    stage = transform_deals(table("opportunities", opportunity("a", _stageid_value="s-demo")), currencies(), context(), links())
    assert row(stage, "a")[STAGE] is None and rejects_of(stage, "a") == [(STAGE, "stage_map")]
