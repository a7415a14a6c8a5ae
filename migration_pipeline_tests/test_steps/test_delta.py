"""Delta pickup against the sandbox through real sockets: a full migration, then creates, updates (an owner change,
a stage change) and deletes in the Dataverse simulator; `migrate delta` brings Pipedrive in line, `migrate verify` is
clean, and a second `migrate delta` writes nothing. Plus the pickup's own fallbacks (watermark, expired token)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from migration_pipeline.dynamics.client import DataverseClient
from migration_pipeline.sandbox.runtime import Sandbox
from migration_pipeline.steps.delta import pickup_changes, read_pending
from migration_pipeline.mapping.spec import DYNAMICS_ID_FIELD
from migration_pipeline.steps.existing import Link, existing_ids, record_links
from migration_pipeline.steps.provision import payload_fields
from migration_pipeline.steps.extract import read_cursor
from migration_pipeline.warehouse.catalog import Warehouse
from migration_pipeline_tests.conftest import cli_for, settings_for
from migration_pipeline_tests.test_steps.test_rollback import differences, live_custom_fields


def referenced_elsewhere(dataverse: Any, entity_set: str) -> set[str]:
    """Every id some other row points at (a record safe to delete is in none of them)."""
    values: set[str] = set()
    for name in dataverse.store.entity_sets:
        frame = dataverse.store.table(name).frame
        for column in frame.columns:
            if column.startswith("_") and column.endswith("_value") or (name != entity_set and frame[column].dtype == object):
                values |= {str(v).lower() for v in frame[column].dropna()}
    return values


def live(store: dict[str, list[dict[str, Any]]], name: str) -> dict[str, dict[str, Any]]:
    return {str(r["id"]): r for r in store[name] if not r.get("is_deleted")}


def test_delta_brings_pipedrive_in_line_and_a_second_delta_writes_nothing(make_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    sandbox = make_sandbox(records=300, seed=5)
    settings = settings_for(sandbox, tmp_path)
    dataverse = sandbox.dataverse_app.state.simulator
    pipedrive = sandbox.pipedrive_app.state.simulator
    migrate = cli_for(settings)

    migrate("plan")
    migrate("confirm", "--yes")
    before, fields_before = pipedrive.snapshot(), live_custom_fields(pipedrive)  # what the rollback must give back
    assert "FAILED" not in migrate("run")
    warehouse = Warehouse(settings.migration_home)
    assert read_cursor(warehouse, "accounts")["delta_link"]  # the full run read tracked tables as a change-tracking sync
    deals_before = warehouse.read_staged("deals").set_index("source_id")
    idmap = {name: warehouse.idmap(name) for name in ("organizations", "persons", "deals")}

    # Changes in Dynamics: creates, updates (a name, an owner, a stage) and deletes.
    accounts = dataverse.store.table("accounts").frame
    opportunities = dataverse.store.table("opportunities").frame
    contacts = dataverse.store.table("contacts").frame
    owner = str(accounts["_ownerid_value"].dropna().iloc[0])
    new_account = dataverse.create_row("accounts", {"name": "Delta Pickup GmbH", "_ownerid_value": owner})["accountid"]
    new_contact = dataverse.create_row("contacts", {"firstname": "Dora", "lastname": "Delta", "emailaddress1": "dora@delta.example",
                                                    "_parentcustomerid_value": new_account, "_ownerid_value": owner})["contactid"]
    renamed = next(i for i in accounts["accountid"] if i in idmap["organizations"] and i not in existing_ids(warehouse, "organizations"))
    dataverse.update_row("accounts", renamed, {"name": "Renamed In Dynamics AG"})

    migrated = opportunities[opportunities["opportunityid"].isin(set(idmap["deals"])) & (opportunities["statecode"] == 0)]
    moved = migrated.iloc[0]
    other_owner = next(o for o in opportunities["_ownerid_value"].dropna()
                       if deals_before.at[moved["opportunityid"], "owner_id"] != owner_id_of(deals_before, opportunities, o))
    other_stage = next(s for p, s in zip(migrated["_processid_value"], migrated["_stageid_value"], strict=True)
                       if p == moved["_processid_value"] and s != moved["_stageid_value"])
    dataverse.update_row("opportunities", moved["opportunityid"], {"_ownerid_value": other_owner, "_stageid_value": other_stage})

    referenced = referenced_elsewhere(dataverse, "opportunities")
    gone_deal = next(i for i in migrated["opportunityid"].iloc[1:] if i not in referenced)
    dataverse.delete_row("opportunities", gone_deal)
    referenced = referenced_elsewhere(dataverse, "contacts")
    gone_person = next(i for i in contacts["contactid"] if i in idmap["persons"] and i not in referenced
                       and i not in existing_ids(warehouse, "persons"))
    dataverse.delete_row("contacts", gone_person)
    # A person linked as held before the migration (`idmap.existing`), its contact deleted: unlinked, never deleted.
    kept_person = next(i for i in contacts["contactid"] if i in idmap["persons"] and i not in referenced
                       and i not in existing_ids(warehouse, "persons") and i != gone_person)
    record_links(warehouse, "persons", [Link(kept_person, idmap["persons"][kept_person], "test")], "test")
    dynamics_id = payload_fields(warehouse, "persons").codes[DYNAMICS_ID_FIELD]  # a record held before carries none
    pipedrive.change_record("persons", int(idmap["persons"][kept_person]), {"custom_fields": {dynamics_id: None}})
    dataverse.delete_row("contacts", kept_person)

    # The objects with no "Dynamics ID" change too: a lead, a task, a note, a product line are updated in place; a
    # renamed file is uploaded again; an account whose parent is cleared loses its relationship; and one of each goes.
    loaded = {name: warehouse.idmap(name) for name in IN_PLACE + ("files", "organizations_relationships")}
    staged_before = {name: warehouse.read_staged(name).set_index("source_id") for name in UPDATABLE + ("files",)}
    updates_before = update_counts(warehouse)
    open_deals = set(opportunities.loc[opportunities["statecode"] == 0, "opportunityid"])  # archived deals cannot be edited
    lines = dataverse.store.table("opportunityproducts").frame
    lines = lines[lines["opportunityproductid"].isin(set(loaded["deal_products"])) & lines["_opportunityid_value"].isin(open_deals)
                  & (lines["_opportunityid_value"] != moved["opportunityid"])]
    tasks = [i for i in dataverse.store.table("tasks").frame["activityid"] if i in loaded["activities"]]
    # An annotation with text and an attachment is a note and a file: each change here is on one of them only.
    notes = [i for i in dataverse.store.table("annotations").frame["annotationid"] if i in loaded["notes"] and i not in loaded["files"]]
    files = [i for i in dataverse.store.table("annotations").frame["annotationid"] if i in loaded["files"] and i not in loaded["notes"]]
    referenced = referenced_elsewhere(dataverse, "leads")
    leads = [i for i in dataverse.store.table("leads").frame["leadid"] if i in loaded["leads"]]
    changed = {"leads": leads[0], "activities": tasks[0], "notes": notes[0], "deal_products": lines["opportunityproductid"].iloc[0],
               "files": files[0]}
    dataverse.update_row("leads", changed["leads"], {"subject": "Changed In Dynamics"})
    dataverse.update_row("tasks", changed["activities"], {"subject": "Changed In Dynamics"})
    dataverse.update_row("annotations", changed["notes"], {"notetext": "Changed in Dynamics."})
    dataverse.update_row("opportunityproducts", changed["deal_products"], {"quantity": float(lines["quantity"].fillna(1).iloc[0]) + 7})
    dataverse.update_row("annotations", changed["files"], {"filename": "changed-in-dynamics.txt"})
    orphaned = next(i for i in loaded["organizations_relationships"] if i != renamed)
    dataverse.update_row("accounts", orphaned, {"_parentaccountid_value": None})
    gone = {"leads": next(i for i in leads[1:] if i not in referenced), "activities": tasks[1], "notes": notes[1],
            "deal_products": lines["opportunityproductid"].iloc[1]}
    for entity_set, source_id in zip(("leads", "tasks", "annotations", "opportunityproducts"), gone.values(), strict=True):
        dataverse.delete_row(entity_set, source_id)

    out = migrate("delta")
    assert re.search(r"dynamics/changes: [1-9]\d* changed, 7 deleted", out), out
    assert "FAILED" not in out, out
    store = pipedrive.snapshot()
    organizations, persons, deals = (live(store, name) for name in ("organizations", "persons", "deals"))
    after = {name: warehouse.idmap(name) for name in ("organizations", "persons", "deals")}
    assert organizations[after["organizations"][new_account]]["name"] == "Delta Pickup GmbH"
    assert persons[after["persons"][new_contact]]["name"] == "Dora Delta"
    assert organizations[after["organizations"][renamed]]["name"] == "Renamed In Dynamics AG"
    assert after["organizations"][renamed] == idmap["organizations"][renamed]  # updated in place, not recreated
    deal = deals[idmap["deals"][moved["opportunityid"]]]
    staged = warehouse.read_staged("deals").set_index("source_id")
    assert deal["owner_id"] == staged.at[moved["opportunityid"], "owner_id"] != deals_before.at[moved["opportunityid"], "owner_id"]
    assert staged.at[moved["opportunityid"], "ref:stage_id:stages"] != deals_before.at[moved["opportunityid"], "ref:stage_id:stages"]
    assert gone_deal not in after["deals"] and idmap["deals"][gone_deal] not in deals
    assert gone_person not in after["persons"] and idmap["persons"][gone_person] not in persons
    assert kept_person not in after["persons"] and idmap["persons"][kept_person] in persons  # pre-existing: kept in Pipedrive
    for name in IN_PLACE:  # updated in place: the same record, now holding what the changed row makes
        source_id = changed[name]
        assert warehouse.idmap(name)[source_id] == loaded[name][source_id], name
        assert not warehouse.read_staged(name).set_index("source_id").loc[source_id].equals(staged_before[name].loc[source_id]), name
    # Only records whose staged row changed are written (a change can reach a few: a bundle's lines share its price;
    # a deal is worth the sum of its lines).
    revalued = set(lines.loc[lines["opportunityproductid"].isin([changed["deal_products"], gone["deal_products"]]), "_opportunityid_value"])
    for name, updated in updated_since(warehouse, updates_before).items():
        now = warehouse.read_staged(name).set_index("source_id")
        rows_changed = {i for i in updated if i in now.index and i in staged_before[name].index
                        and now.loc[i].to_json() != staged_before[name].loc[i].to_json()}
        allowed = rows_changed | (revalued if name == "deals" else set())
        assert updated <= allowed and (name not in IN_PLACE or changed[name] in updated), (name, updated - allowed)
    held = {name: live(store, name) for name in ("leads", "activities", "notes", "files", "deal_products")}
    assert held["leads"][warehouse.idmap("leads")[changed["leads"]]]["title"] == "Changed In Dynamics"
    assert held["activities"][warehouse.idmap("activities")[changed["activities"]]]["subject"] == "Changed In Dynamics"
    assert "Changed in Dynamics." in held["notes"][warehouse.idmap("notes")[changed["notes"]]]["content"]
    new_file = warehouse.idmap("files")[changed["files"]]  # a file cannot be edited: uploaded again, the old one deleted
    assert new_file != loaded["files"][changed["files"]] and loaded["files"][changed["files"]] not in held["files"]
    assert held["files"][new_file]["name"] == "changed-in-dynamics.txt"
    assert orphaned not in warehouse.idmap("organizations_relationships")
    assert not any(r["id"] == int(loaded["organizations_relationships"][orphaned]) and not r.get("is_deleted")
                   for r in store["organization_relationships"])
    for name, source_id in gone.items():
        assert source_id not in warehouse.idmap(name) and loaded[name][source_id] not in held[name], name
    deletes = warehouse.query("SELECT object, source_id FROM audit.operations WHERE operation = 'delete' AND outcome = 'ok'")
    expected = {("deals", gone_deal), ("persons", gone_person), ("files", changed["files"]), ("organizations_relationships", orphaned),
                *gone.items()}
    deleted = set(deletes.itertuples(index=False, name=None))
    # The deleted lead's company and person (made from the lead, no row makes them any more) go with it.
    made_by_lead = deleted - expected
    assert expected <= deleted and made_by_lead and all(
        name in ("organizations", "persons") and source_id.startswith("lead-") and source_id not in warehouse.idmap(name)
        and source_id not in set(warehouse.read_staged(name)["source_id"]) for name, source_id in made_by_lead), made_by_lead
    assert read_pending(warehouse) == {}
    migrate("verify")

    # Nothing changed since: a second delta reads nothing and writes nothing.
    operations = len(warehouse.query("SELECT * FROM audit.operations"))
    snapshot = pipedrive.snapshot()
    out = migrate("delta")
    assert "dynamics/changes: 0 changed, 0 deleted" in out, out
    assert pipedrive.snapshot() == snapshot
    assert len(warehouse.query("SELECT * FROM audit.operations")) == operations

    # After the full migration and the delta, a rollback gives Pipedrive back its state before the migration,
    # field by field, pre-existing records included (the delta's updates and deletes among what it undoes).
    # The person this test relabelled as held before the migration was created by it: the rollback must leave it
    # alone like any pre-existing record, so it is the one record the state before the migration cannot hold.
    migrate("rollback", "--yes")
    relabelled = int(idmap["persons"][kept_person])
    after = pipedrive.snapshot()
    assert any(record["id"] == relabelled and not record.get("is_deleted") for record in after["persons"])
    after["persons"] = [record for record in after["persons"] if record["id"] != relabelled]
    assert differences(before, after) == []
    assert live_custom_fields(pipedrive) == fields_before


IN_PLACE = ("leads", "activities", "notes", "deal_products")
UPDATABLE = ("organizations", "persons", "products", "deals", *IN_PLACE)


def update_counts(warehouse: Warehouse) -> int:
    """How many updates the journal holds (where the ones a later run makes start)."""
    return int(warehouse.query("SELECT count(*) AS n FROM audit.operations")["n"].iloc[0])


def updated_since(warehouse: Warehouse, start: int) -> dict[str, set[str]]:
    """Source ids updated after the first `start` operations, per object updated in place."""
    rows = warehouse.query("SELECT object, source_id, operation FROM audit.operations ORDER BY \"at\", run_id, seq").iloc[start:]
    rows = rows[(rows["operation"] == "update") & rows["object"].isin(UPDATABLE)]
    return {name: set(rows.loc[rows["object"] == name, "source_id"]) for name in UPDATABLE}


def owner_id_of(deals: pd.DataFrame, opportunities: pd.DataFrame, owner: str) -> Any:
    """The Pipedrive owner a Dynamics owner maps to, as staged on a deal that owner holds."""
    held = opportunities.loc[opportunities["_ownerid_value"] == owner, "opportunityid"]
    held = [i for i in held if i in deals.index]
    return deals.at[held[0], "owner_id"] if held else None


def test_pickup_reads_by_watermark_and_re_reads_a_table_whose_token_expired(make_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    sandbox = make_sandbox(records=120, seed=7)
    settings = settings_for(sandbox, tmp_path)
    dataverse = sandbox.dataverse_app.state.simulator
    cli_for(settings)("plan")
    warehouse = Warehouse(settings.migration_home)
    projects = dataverse.store.table("cr7f2_projects").frame
    assert read_cursor(warehouse, "cr7f2_projects")["delta_link"]  # tracked, read with change tracking
    assert not read_cursor(warehouse, "contacts")["delta_link"]  # read without: a watermark table here

    with DataverseClient.from_settings(settings, backoff=0.01) as client:
        assert all(r.changed == 0 and r.deleted == 0 for r in pickup_changes(client, warehouse))  # overlap re-reads are not changes
        contact = dataverse.store.table("contacts").frame["contactid"].iloc[0]
        dataverse.update_row("contacts", contact, {"lastname": "Watermarked"})
        removed = projects.iloc[0, 0]
        dataverse.delete_row("cr7f2_projects", removed)
        dataverse.expire_change_tracking()
        results = {r.entity_set: r for r in pickup_changes(client, warehouse)}
    assert (results["contacts"].mode, results["contacts"].changed, results["contacts"].deleted) == ("watermark", 1, 0)
    assert (results["cr7f2_projects"].mode, results["cr7f2_projects"].deleted) == ("full", 1)  # expired token: full re-read
    raw = warehouse.read_raw("contacts").set_index("contactid")
    assert raw.at[contact, "lastname"] == "Watermarked" and len(raw) == len(dataverse.store.table("contacts").frame)
    assert removed not in set(warehouse.read_raw("cr7f2_projects").iloc[:, 0])
    assert read_cursor(warehouse, "cr7f2_projects")["delta_link"] != json.dumps(None)
    # Pending per load step: a contact reaches the persons; a custom entity (flattened into custom fields) every
    # object with custom fields.
    custom = {"changed": [], "deleted": [removed]}
    assert read_pending(warehouse) == {"persons": {"changed": [contact], "deleted": [removed]}, "organizations": custom,
                                       "products": custom, "deals": custom, "leads": custom}
