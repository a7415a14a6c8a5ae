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

    out = migrate("delta")
    assert re.search(r"dynamics/changes: [1-9]\d* changed, 3 deleted", out), out
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
    deletes = warehouse.query("SELECT object, source_id FROM audit.operations WHERE operation = 'delete' AND outcome = 'ok'")
    assert sorted(deletes.itertuples(index=False, name=None)) == [("deals", gone_deal), ("persons", gone_person)]
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
    assert read_pending(warehouse) == {"contacts": {"changed": [contact], "deleted": []},
                                       "cr7f2_projects": {"changed": [], "deleted": [removed]}}
