"""Phone calls, emails, tasks and appointments -> one activity table, with participants from activity parties."""

from __future__ import annotations

import pandas as pd

from migration_pipeline.mapping.rules.activities import DEAL, LEAD_PERSON, ORG, PARTICIPANTS, transform_activities
from migration_pipeline.mapping.rules.common import Links
from migration_pipeline.mapping.rules.deals import transform_deals
from migration_pipeline.mapping.rules.persons import transform_persons
from migration_pipeline_tests.test_mapping.rules.frames import context, currencies, organizations, rejects_of, row, table


def links() -> Links:
    found = Links()
    found.add("account", organizations({"accountid": "acme", "name": "Acme"}))
    found.add("contact", transform_persons(table("contacts", *({"contactid": c, "fullname": c} for c in ("ann", "bob", "cy"))), context(), found))
    found.add("opportunity", transform_deals(table("opportunities", {"opportunityid": "deal", "name": "Deal", "statecode": 0}),
                                             currencies(), context(), found))
    found.alias(LEAD_PERSON, pd.Series(["lead-1"]), "persons", pd.Series(["lead-person:lead-1"]))
    return found


def activity(activity_id: str, **fields: object) -> dict[str, object]:
    return {"activityid": activity_id, "subject": f"Subject {activity_id}", "_ownerid_value": "u1", "statecode": 0, **fields}


def party(party_id: str, activity_id: str, mask: int, table_name: str | None, party: str | None, address: str | None = None,
          label: str | None = None) -> dict[str, object]:
    return {"activitypartyid": party_id, "_activityid_value": activity_id, "participationtypemask": mask, "_partyid_value": party,
            "_partyid_value__table": table_name, "_partyid_value__label": label, "addressused": address}


def run(parties: list[dict[str, object]], pointers: pd.DataFrame | None = None, **typed: list[dict[str, object]]) -> object:
    frames = {kind: table("activities", *typed.get(kind, []), extra=extra)
              for kind, extra in (("phonecalls", ()), ("emails", ()), ("tasks", ()), ("appointments", ("location", "isalldayevent")))}
    return transform_activities(frames["phonecalls"], frames["emails"], frames["tasks"], frames["appointments"],
                                table("activityparties", *parties), context(), links(), pointers)


def test_the_four_types_merge_into_one_table_with_their_type_dates_and_done_state() -> None:
    stage = run(
        [],
        phonecalls=[activity("call", scheduledstart="2024-01-02T09:30:00Z", scheduleddurationminutes=30, actualdurationminutes=45, statecode=1,
                             actualstart="2024-01-02T09:35:00Z")],
        emails=[activity("mail", actualstart="2024-01-03T10:00:00Z", statecode=2, description="Line one\nLine <two>")],
        tasks=[activity("task", scheduledstart="2024-01-01T08:00:00Z", scheduledend="2024-01-05T17:00:00Z", scheduleddurationminutes=60)],
        appointments=[activity("meet", scheduledstart="2024-01-04T00:00:00Z", isalldayevent=True, location="Room 4", statecode=3),
                      activity("undated", createdon="2023-12-31T23:59:00Z")],
    )
    call, mail, task, meet = (row(stage, key) for key in ("call", "mail", "task", "meet"))
    assert [call["type"], mail["type"], task["type"], meet["type"]] == ["call", "email", "task", "meeting"]
    assert (call["due_date"], call["due_time"], call["duration"], call["done"]) == ("2024-01-02", "09:30", "00:45", True)
    assert (task["due_date"], task["due_time"], task["duration"], task["done"]) == ("2024-01-05", "17:00", "01:00", False)  # a task is due at its end
    assert (mail["duration"], mail["done"]) == (None, True)
    assert mail["note"] == "<p><i>Canceled in Dynamics.</i></p><p>Line one<br>Line &lt;two&gt;</p>"
    assert (meet["due_time"], meet["location"], meet["done"]) == (None, {"value": "Room 4"}, False)  # all day, scheduled
    assert row(stage, "undated")["due_date"] == "2023-12-31" and rejects_of(stage, "undated") == [("due_date", "due:createdon")]
    assert (call["owner_id"], call["subject"]) == (11, "Subject call")


def test_participants_come_from_parties_and_unresolved_parties_are_kept_as_text() -> None:
    parties = [
        party("p-from", "mail", 1, "systemuser", "u1", "owner@contoso.com", "Owner"),
        party("p-to", "mail", 2, "contact", "bob", "bob@x.com", "Bob"),
        party("p-cc", "mail", 3, "contact", "cy", "cy@x.com", "Cy"),
        party("p-cc-again", "mail", 3, "contact", "bob", "bob@x.com", "Bob"),
        party("p-stranger", "mail", 2, None, None, "someone@unknown.example"),
        party("p-lead", "mail", 2, "lead", "lead-1", "lead@x.com", "Lee"),
        party("p-gone", "mail", 3, "contact", "deleted-contact", "gone@x.com", "Gone"),
        party("p-user", "mail", 4, "systemuser", "u2", "colleague@contoso.com", "Colleague"),
        party("p-orphan", "no-such-activity", 2, "contact", "ann"),
    ]
    stage = run(parties, emails=[activity("mail", _regardingobjectid_value="ann", _regardingobjectid_value__table="contact")])
    mail = row(stage, "mail")
    # The regarding contact is primary, then by role (To, From, attendees, Cc, Bcc), then by party id; each person once.
    assert mail[PARTICIPANTS] == ["ann", "lead-person:lead-1", "bob", "cy"]
    assert mail["note"] == ("<p>Other participants: To: someone@unknown.example; Cc: Gone &lt;gone@x.com&gt;; "
                            "Bcc: Colleague &lt;colleague@contoso.com&gt;</p>")
    outcomes = dict(zip(stage.extra["participants"]["source_id"], stage.extra["participants"]["outcome"], strict=True))
    assert outcomes == {"p-from": "owner", "p-to": "participant", "p-cc": "participant", "p-cc-again": "participant",
                        "p-stranger": "note_text", "p-lead": "participant", "p-gone": "note_text", "p-user": "note_text"}
    merged = stage.merged.set_index("source_id")
    assert set(merged.index) == set(outcomes) and set(merged["into_source_id"]) == {"mail"}
    assert merged.loc["p-stranger", "rule"] == "activity_party:note_text"
    assert rejects_of(stage, "p-orphan") == [("*", "activity_party")]


def test_regarding_links_and_other_activity_types() -> None:
    pointers = table("activities", activity("call"), activity("fax"))
    stage = run([], pointers, phonecalls=[
        activity("call", _regardingobjectid_value="deal", _regardingobjectid_value__table="opportunity"),
        activity("org-call", _regardingobjectid_value="acme", _regardingobjectid_value__table="account"),
        activity("lost-call", _regardingobjectid_value="nowhere", _regardingobjectid_value__table="account"),
    ])
    assert row(stage, "call")[DEAL] == "deal" and row(stage, "org-call")[ORG] == "acme"
    assert ("regarding", "regarding:regardingobjectid") in rejects_of(stage, "lost-call")
    assert rejects_of(stage, "fax") == [("*", "activity_type")]
    assert "fax" not in set(stage.staged["source_id"])
