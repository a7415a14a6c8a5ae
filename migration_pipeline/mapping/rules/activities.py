"""Dynamics phone calls, emails, tasks and appointments -> one table of Pipedrive activities.

Rules:
- The four typed tables become one, with `type` call / email / task / meeting (the key strings of
  Pipedrive's standard activity types). Any other activity in `activitypointers` (fax, letter,
  a custom activity) is rejected: its type is not migrated.
- `due_date` and `due_time` (UTC, `YYYY-MM-DD` and `HH:MM`) come from the activity's own date:
  a task's due date (`scheduledend`) first, any other activity's start (`scheduledstart`) first,
  then the actual start, then the other scheduled date; with none, `createdon` is used and that is
  reported. All-day appointments get no time. `duration` (`HH:MM`) is the actual duration of a
  completed activity, else the scheduled one (emails have none).
- `done` is true for completed and canceled activities (a canceled call is not something left to
  do); the note of a canceled one says it was canceled. The owner goes through the owner map.
- The regarding record becomes the link: an account -> `ref:org_id:organizations`, an
  opportunity -> `ref:deal_id:deals`, a lead -> `ref:lead_id:leads` (a qualified lead -> its
  deal), a contact -> the primary participant (v2 refuses `person_id`: the person is set through
  `participants`). A regarding record that is not migrated is reported.
- Participants come from the activity parties: every party that is a migrated person (a contact,
  or a lead's person) is a participant (`ref:participants:persons`, a list of person source ids,
  the first primary: the regarding contact, else the recipient, sender, attendees in that order).
  The owner's own party needs nothing more (it is `owner_id`). Every other party, one that
  resolves to no migrated person (an unknown address, another user, an account), is kept as text
  in the note ("To: someone@example.com"), never lost.
- The description becomes the note (HTML-escaped, cut to 100,000 characters, reported).

Extra frames: `participants` (one row per activity party: source_id = the party, activity,
role, party_table, party_id, address, outcome = participant / owner / note_text, person). Every
party is also in `merged` (into its activity, rule `activity_party:<outcome>`) or rejected.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from migration_pipeline.mapping.rules import common
from migration_pipeline.mapping.rules.common import NAME_LIMIT, NOTE_LIMIT, Links, ObjectStage, Outcomes, RuleContext, ref_column

OBJECT = "activities"
ORG = ref_column("org_id", "organizations")
DEAL = ref_column("deal_id", "deals")
LEAD = ref_column("lead_id", "leads")
PARTICIPANTS = ref_column("participants", "persons")
LEAD_PERSON = "lead.person"  # the Links alias: lead id -> the person made for (or attached to) the lead
TYPES = {"phonecall": "call", "email": "email", "task": "task", "appointment": "meeting"}
# Which date is the activity's own, per type, in order of preference.
DUE_FROM = {
    "task": ("scheduledend", "scheduledstart", "actualstart", "actualend"),
    "other": ("scheduledstart", "actualstart", "scheduledend", "actualend"),
}
COMPLETED, CANCELED = 1, 2
ROLES = {1: "From", 2: "To", 3: "Cc", 4: "Bcc", 5: "Required attendee", 6: "Optional attendee", 7: "Organizer",
         8: "Regarding", 9: "Owner", 10: "Resource", 11: "Customer"}
# Who becomes the primary participant when the activity is not about a contact.
PRIMARY_ORDER = {2: 0, 1: 1, 5: 2, 7: 3, 6: 4, 3: 5, 4: 6, 11: 7}


def transform_activities(
    phonecalls: pd.DataFrame,
    emails: pd.DataFrame,
    tasks: pd.DataFrame,
    appointments: pd.DataFrame,
    activityparties: pd.DataFrame,
    context: RuleContext,
    links: Links,
    activitypointers: pd.DataFrame | None = None,
) -> ObjectStage:
    """Every typed activity staged (its parties folded in), every other activity and orphan party rejected."""
    outcomes = Outcomes(OBJECT)
    raw = combined({"phonecall": phonecalls, "email": emails, "task": tasks, "appointment": appointments})
    ids = raw["activityid"].astype(str)
    if activitypointers is not None:
        other = ~common.is_in(activitypointers["activityid"], ids)
        outcomes.reject(activitypointers.loc[other, "activityid"], "*", None,
                        "activity type not migrated (only phone calls, emails, tasks and appointments are)", "activity_type")
    staged = common.frame_of({"source_id": ids, "type": raw["kind"].map(TYPES)}, raw.index)
    staged["subject"] = outcomes.carry(common.text(raw["subject"], NAME_LIMIT), ids, "subject", raw["subject"], "text:subject")
    staged["owner_id"] = outcomes.carry(common.owner(raw["_ownerid_value"], context), ids, "owner_id", raw["_ownerid_value"], "owner:ownerid")
    due = due_stamp(raw, ids, outcomes)
    all_day = raw["isalldayevent"].fillna(False).astype(bool).to_numpy() if "isalldayevent" in raw else np.zeros(len(raw), dtype=bool)
    staged["due_date"] = common.plain_series(due.str.slice(0, 10))
    staged["due_time"] = common.plain_series(due.str.slice(11, 16).where(~all_day, None))
    staged["duration"] = duration(raw, ids, outcomes)
    state = pd.to_numeric(raw["statecode"], errors="coerce")
    staged["done"] = common.plain_series(state.isin([COMPLETED, CANCELED]).to_numpy())
    location = common.text(raw["location"], NAME_LIMIT).values if "location" in raw else pd.Series(None, index=raw.index, dtype=object)
    staged["location"] = common.plain_series([{"value": value} if isinstance(value, str) else None for value in location], raw.index)
    regarding = regarding_links(raw, ids, links, outcomes)
    for column in (ORG, DEAL, LEAD):
        staged[column] = regarding[column]
    parties = party_outcomes(activityparties, raw, links, outcomes)
    staged[PARTICIPANTS] = participant_lists(ids, regarding["person"], parties)
    note = notes(raw, parties, state)
    staged["note"] = outcomes.carry(common.cut_html(note, NOTE_LIMIT), ids, "note", raw["description"], "html:description")
    return outcomes.stage(staged, participants=parties.reset_index(drop=True))


def combined(typed: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The typed tables stacked, with `kind` (the Dynamics type) on each row."""
    frames = [frame.assign(kind=kind) for kind, frame in typed.items() if frame is not None and len(frame)]
    if not frames:
        frames = [frame.assign(kind=kind) for kind, frame in typed.items() if frame is not None][:1]
    return pd.concat(frames, ignore_index=True)


def due_stamp(raw: pd.DataFrame, ids: pd.Series, outcomes: Outcomes) -> pd.Series:
    """The UTC date-time an activity is due: its own date by type, else `createdon` (reported)."""
    stamps = {column: common.utc_timestamp(raw[column]).values.astype(object) for column in {*DUE_FROM["task"], "createdon"} if column in raw}
    is_task = (raw["kind"] == "task").to_numpy()
    due = pd.Series(None, index=raw.index, dtype=object)
    for key, rows in (("task", is_task), ("other", ~is_task)):
        for column in DUE_FROM[key]:
            if column in stamps:
                fill = rows & due.isna().to_numpy() & stamps[column].notna().to_numpy()
                due[fill] = stamps[column][fill]
    undated = due.isna().to_numpy()
    outcomes.reject(ids[undated], "due_date", None, "no date in Dynamics; createdon used", "due:createdon")
    due[undated] = stamps["createdon"][undated]
    return due.astype(object).where(due.notna(), "")


def duration(raw: pd.DataFrame, ids: pd.Series, outcomes: Outcomes) -> pd.Series:
    """HH:MM: the actual duration of completed activities, else the scheduled one; none for emails."""
    actual = pd.to_numeric(raw["actualdurationminutes"], errors="coerce")
    scheduled = pd.to_numeric(raw["scheduleddurationminutes"], errors="coerce")
    completed = pd.to_numeric(raw["statecode"], errors="coerce") == COMPLETED
    minutes = actual.where(completed & actual.notna(), scheduled).where(raw["kind"] != "email")
    return outcomes.carry(common.hhmm(minutes), ids, "duration", minutes, "duration:durationminutes")


def regarding_links(raw: pd.DataFrame, ids: pd.Series, links: Links, outcomes: Outcomes) -> pd.DataFrame:
    """org / deal / lead links and the regarding person, from the regarding record."""
    table = raw["_regardingobjectid_value__table"].astype(object)
    target = raw["_regardingobjectid_value"]
    landed = links.resolve(table, target)
    lost = (target.notna() & landed["object"].isna()).to_numpy()
    outcomes.reject(ids[lost], "regarding", target[lost], "regarding record is not migrated", "regarding:regardingobjectid")
    out = pd.DataFrame(index=raw.index)
    for column, object_name in ((ORG, "organizations"), (DEAL, "deals"), (LEAD, "leads"), ("person", "persons")):
        out[column] = landed["source_id"].where(landed["object"] == object_name, None)
    return out.astype(object).where(out.notna(), None)


def party_outcomes(activityparties: pd.DataFrame, raw: pd.DataFrame, links: Links, outcomes: Outcomes) -> pd.DataFrame:
    """Each party: who it is, and whether it is a participant, the owner, or text in the note."""
    parties = activityparties.reset_index(drop=True)
    frame = pd.DataFrame({
        "source_id": parties["activitypartyid"].astype(str).to_numpy(dtype=object),
        "activity": common.plain_series(parties["_activityid_value"]).to_numpy(),
        "mask": pd.to_numeric(parties["participationtypemask"], errors="coerce").fillna(0).astype(int).to_numpy(),
        "party_table": common.plain_series(parties["_partyid_value__table"]).to_numpy(),
        "party_id": common.plain_series(parties["_partyid_value"]).to_numpy(),
        "name": common.plain_series(parties["_partyid_value__label"]).to_numpy() if "_partyid_value__label" in parties else None,
        "address": common.plain_series(parties["addressused"]).to_numpy(),
    })
    frame["role"] = frame["mask"].map(ROLES).fillna("Party")
    orphan = ~common.is_in(frame["activity"], raw["activityid"])
    outcomes.reject(frame.loc[orphan, "source_id"], "*", frame.loc[orphan, "activity"], "its activity is not migrated", "activity_party",
                    object_name="activityparties")
    frame = frame[~orphan].reset_index(drop=True)
    person = links.resolve("contact", frame["party_id"].where(frame["party_table"] == "contact"))["source_id"]
    via_lead = links.resolve(LEAD_PERSON, frame["party_id"].where(frame["party_table"] == "lead"))["source_id"]
    frame["person"] = person.where(person.notna(), via_lead).astype(object).where(lambda s: s.notna(), None)
    owner_of = pd.Series(common.lowered(raw["_ownerid_value"]), index=raw["activityid"].astype(str).to_numpy(), dtype=object)
    activity_owner = owner_of.reindex(frame["activity"].to_numpy()).to_numpy()
    is_owner = (frame["party_table"] == "systemuser").to_numpy() & (common.lowered(frame["party_id"]) == activity_owner)
    frame["outcome"] = np.select([frame["person"].notna().to_numpy(), is_owner], ["participant", "owner"], "note_text")
    for outcome, rows in frame.groupby("outcome"):
        outcomes.merge(rows["source_id"], OBJECT, rows["activity"], f"activity_party:{outcome}", object_name="activityparties")
    return frame[["source_id", "activity", "role", "mask", "party_table", "party_id", "name", "address", "outcome", "person"]]


def participant_lists(ids: pd.Series, regarding_person: pd.Series, parties: pd.DataFrame) -> pd.Series:
    """Person source ids per activity, deduplicated, the primary first (the regarding contact, else by role)."""
    first = pd.DataFrame({"activity": ids.to_numpy(dtype=object), "person": regarding_person.to_numpy(dtype=object), "order": -1, "party": ""})
    rest = parties[parties["outcome"] == "participant"]
    rest = pd.DataFrame({"activity": rest["activity"], "person": rest["person"],
                         "order": rest["mask"].map(PRIMARY_ORDER).fillna(len(PRIMARY_ORDER)).astype(int), "party": rest["source_id"]})
    everyone = pd.concat([first.dropna(subset=["person"]), rest], ignore_index=True).sort_values(["activity", "order", "party"])
    everyone = everyone.drop_duplicates(["activity", "person"])
    lists = common.grouped(everyone["activity"], everyone["person"])
    return common.plain_series([lists.get(activity) for activity in ids], ids.index)


def notes(raw: pd.DataFrame, parties: pd.DataFrame, state: pd.Series) -> pd.Series:
    """The description as HTML, with the cancellation and the parties kept as text appended."""
    body = common.html_text(raw["description"])
    text_parties = parties[parties["outcome"] == "note_text"].sort_values(["activity", "mask", "source_id"])
    described = [_party_text(role, name, address) for role, name, address in zip(text_parties["role"], text_parties["name"],
                                                                                  text_parties["address"], strict=True)]
    by_activity = {activity: "; ".join(items) for activity, items in common.grouped(text_parties["activity"], described).items()}
    others = [by_activity.get(activity) for activity in raw["activityid"].astype(str)]
    canceled = (state == CANCELED).to_numpy()
    lines = []
    for text_body, other, was_canceled in zip(body, others, canceled, strict=True):
        parts = []
        if was_canceled:
            parts.append("<p><i>Canceled in Dynamics.</i></p>")
        if isinstance(text_body, str) and text_body:
            parts.append(f"<p>{text_body}</p>")
        if isinstance(other, str):
            parts.append(f"<p>Other participants: {other}</p>")
        lines.append("".join(parts) or None)
    return common.plain_series(lines, raw.index)


def _party_text(role: str, name: object, address: object) -> str:
    """'To: Jane Doe <jane@example.com>', escaped for the HTML note."""
    name = name if isinstance(name, str) else ""
    address = address if isinstance(address, str) else ""
    who = f"{name} <{address}>" if name and address else (name or address or "unknown")
    return html.escape(f"{role}: {who}")
