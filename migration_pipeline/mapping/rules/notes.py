"""Dynamics annotation text -> Pipedrive notes (v1), on the right parent.

Rules:
- An annotation with text becomes a note: the title in bold, then the text, HTML-escaped with
  line breaks kept, cut to 100,000 characters (reported). An annotation that is only an
  attachment (no text) is the files rule's, not a note; one with neither text, title nor
  attachment is rejected as empty.
- The parent is the annotation's regarding record, wherever it landed: an account -> `ref:org_id:
  organizations`, a contact -> `ref:person_id:persons`, an opportunity -> `ref:deal_id:deals`,
  a lead -> `ref:lead_id:leads`, a qualified lead -> its deal. Exactly one is set. A note whose
  parent is not migrated is rejected.
- `add_time` keeps `createdon` (UTC `YYYY-MM-DD HH:MM:SS`, the v1 form) and `user_id` the
  owner through the owner map (Pipedrive lets an admin token set a note's author).
"""

from __future__ import annotations

import pandas as pd

from migration_pipeline.mapping.rules import common
from migration_pipeline.mapping.rules.common import NOTE_LIMIT, Links, ObjectStage, Outcomes, RuleContext, ref_column

OBJECT = "notes"
PARENTS = {
    "organizations": ref_column("org_id", "organizations"),
    "persons": ref_column("person_id", "persons"),
    "deals": ref_column("deal_id", "deals"),
    "leads": ref_column("lead_id", "leads"),
}


def transform_notes(annotations: pd.DataFrame, context: RuleContext, links: Links) -> ObjectStage:
    """Every annotation with text staged as a note on its parent, or rejected; attachments are left to the files rule."""
    annotations = annotations.reset_index(drop=True)
    outcomes = Outcomes(OBJECT)
    subject = common.text(annotations["subject"], NOTE_LIMIT).values
    body = common.text(annotations["notetext"], NOTE_LIMIT).values
    document = annotations["isdocument"].fillna(False).astype(bool).to_numpy()
    has_text = body.notna().to_numpy()
    empty = ~has_text & ~document & subject.isna().to_numpy()
    ids = annotations["annotationid"].astype(str)
    outcomes.reject(ids[empty], "*", None, "empty note: no title, text or attachment", "empty_note")
    notes = annotations[has_text | (~document & ~empty)].reset_index(drop=True)
    note_ids = notes["annotationid"].astype(str)

    staged = common.frame_of({"source_id": note_ids}, notes.index)
    content = note_content(notes)
    staged["content"] = outcomes.carry(common.cut_html(content, NOTE_LIMIT), note_ids, "content", notes["notetext"], "html:notetext")
    parents = parent_links(notes, note_ids, links, outcomes)
    for column in PARENTS.values():
        staged[column] = parents[column]
    staged["add_time"] = outcomes.carry(common.v1_timestamp(notes["createdon"]), note_ids, "add_time", notes["createdon"], "utc:createdon")
    staged["user_id"] = outcomes.carry(common.owner(notes["_ownerid_value"], context), note_ids, "user_id", notes["_ownerid_value"], "owner:ownerid")
    orphan = parents["orphan"].to_numpy()
    return outcomes.stage(staged[~orphan])


def note_content(notes: pd.DataFrame) -> pd.Series:
    """'<b>Title</b><br>text' as HTML."""
    title = common.html_text(notes["subject"])
    body = common.html_text(notes["notetext"])
    parts = [f"<b>{t}</b><br>{b}" if t and b else (f"<b>{t}</b>" if t else b) for t, b in zip(title, body, strict=True)]
    return common.plain_series(parts, notes.index)


def parent_links(records: pd.DataFrame, ids: pd.Series, links: Links, outcomes: Outcomes) -> pd.DataFrame:
    """One parent link column per Pipedrive parent type (one set per row), and which rows have none.

    Shared with the files rule: an attachment goes on the same parent as its note would.
    """
    target = records["_objectid_value"]
    landed = links.resolve(records["_objectid_value__table"].astype(object), target)
    out = pd.DataFrame(index=records.index)
    for object_name, column in PARENTS.items():
        out[column] = landed["source_id"].where(landed["object"] == object_name, None)
    out = out.astype(object).where(out.notna(), None)
    orphan = landed["object"].isna().to_numpy()
    outcomes.reject(ids[orphan], "*", target[orphan], "its parent record is not migrated", "parent:objectid")
    out["orphan"] = orphan
    return out
