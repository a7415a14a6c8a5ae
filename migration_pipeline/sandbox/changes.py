"""Edits a sales team makes in Dynamics while the migration runs, applied to the Dataverse simulator.

`migrate demo` makes them between the full run and the delta pickup, so the delta has something
of every kind to carry: a new account with a contact, a renamed account, a deal moved to another
stage, a task edited, a note deleted. Each change goes through the simulator's own write path
(version numbers, `modifiedon`, the change-tracking log), as an edit made in Dynamics would.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from migration_pipeline.sandbox.dataverse.simulator import DataverseSimulator


def _first(frame: pd.DataFrame, mask: Any, column: str) -> str | None:
    chosen = frame.loc[mask, column]
    return None if chosen.empty else str(chosen.iloc[0])


def cutover_changes(dataverse: DataverseSimulator) -> list[str]:
    """Apply the edits; returns one line per edit, saying what was changed."""
    done: list[str] = []
    accounts = dataverse.store.table("accounts").frame
    owner = _first(accounts, accounts["_ownerid_value"].notna(), "_ownerid_value")
    new_account = dataverse.create_row("accounts", {"name": "Cutover Newcomer Ltd", "_ownerid_value": owner})["accountid"]
    dataverse.create_row("contacts", {"firstname": "Nova", "lastname": "Newcomer", "emailaddress1": "nova@newcomer.example",
                                      "_parentcustomerid_value": new_account, "_ownerid_value": owner})
    done.append("created the account 'Cutover Newcomer Ltd' with its contact Nova Newcomer")

    named = accounts["name"].notna() & accounts["statecode"].eq(0) if "statecode" in accounts else accounts["name"].notna()
    renamed = _first(accounts, named, "accountid")
    if renamed is not None:
        old = str(accounts.loc[accounts["accountid"] == renamed, "name"].iloc[0])
        dataverse.update_row("accounts", renamed, {"name": f"{old} (renamed)"})
        done.append(f"renamed the account '{old}' to '{old} (renamed)'")

    deals = dataverse.store.table("opportunities").frame
    open_deals = deals[deals["statecode"].eq(0) & deals["_stageid_value"].notna() & deals["_processid_value"].notna()]
    for deal, name, process, stage in zip(open_deals["opportunityid"], open_deals["name"], open_deals["_processid_value"],
                                          open_deals["_stageid_value"], strict=True):
        other = open_deals.loc[(open_deals["_processid_value"] == process) & (open_deals["_stageid_value"] != stage), "_stageid_value"]
        if not other.empty:
            dataverse.update_row("opportunities", deal, {"_stageid_value": other.iloc[0]})
            done.append(f"moved the deal '{name}' to another stage")
            break

    tasks = dataverse.store.table("tasks").frame
    task = _first(tasks, tasks["subject"].notna(), "activityid")
    if task is not None:
        dataverse.update_row("tasks", task, {"subject": "Call back after the cutover"})
        done.append("changed a task's subject to 'Call back after the cutover'")

    notes = dataverse.store.table("annotations").frame
    note = _first(notes, notes["notetext"].notna() & ~notes["isdocument"].fillna(False).astype(bool), "annotationid")
    if note is not None:
        dataverse.delete_row("annotations", note)
        done.append("deleted a note")
    return done
