"""Annotations -> notes on the right parent, and an upload plan for their attachments."""

from __future__ import annotations

import pytest

from migration_pipeline.mapping.rules.common import Links
from migration_pipeline.mapping.rules.files import safe_file_name, transform_files
from migration_pipeline.mapping.rules.notes import transform_notes
from migration_pipeline.mapping.rules.persons import transform_persons
from migration_pipeline_tests.test_mapping.rules.frames import context, currencies, organizations, rejects_of, row, table


def links() -> Links:
    found = Links()
    found.add("account", organizations({"accountid": "acme", "name": "Acme"}))
    found.add("contact", transform_persons(table("contacts", {"contactid": "ann", "fullname": "Ann"}), context(), found))
    return found


def note(annotation_id: str, table_name: str = "account", parent: str = "acme", **fields: object) -> dict[str, object]:
    return {"annotationid": annotation_id, "_objectid_value": parent, "_objectid_value__table": table_name, "isdocument": False,
            "_ownerid_value": "u1", "createdon": "2021-05-26T13:37:30Z", **fields}


ANNOTATIONS = table(
    "annotations",
    note("text", subject="Call <notes>", notetext="Line 1\nLine 2"),
    note("on-person", "contact", "ann", notetext="Hi"),
    note("orphan", "opportunity", "gone", notetext="lost"),
    note("empty"),
    note("both", notetext="see file", isdocument=True, filename="a.pdf", mimetype="application/pdf", filesize=10),
    note("file-only", "contact", "ann", isdocument=True, filename="../../etc/passwd", mimetype="text/plain", filesize=200),
    note("huge", isdocument=True, filename="video.mp4", mimetype="video/mp4", filesize=60 * 1024 * 1024),
)


def test_notes_go_on_their_parent_with_html_text_and_v1_time() -> None:
    stage = transform_notes(ANNOTATIONS, context(), links())
    text = row(stage, "text")
    assert text["content"] == "<b>Call &lt;notes&gt;</b><br>Line 1<br>Line 2"
    assert (text["ref:org_id:organizations"], text["ref:person_id:persons"], text["add_time"], text["user_id"]) == (
        "acme", None, "2021-05-26 13:37:30", 11)
    assert row(stage, "on-person")["ref:person_id:persons"] == "ann"
    assert rejects_of(stage, "orphan") == [("*", "parent:objectid")]
    assert rejects_of(stage, "empty") == [("*", "empty_note")]
    assert sorted(stage.staged["source_id"]) == ["both", "on-person", "text"]  # "file-only" is the files rule's


def test_files_are_planned_with_safe_names_and_oversize_ones_listed_for_manual_upload() -> None:
    stage = transform_files(ANNOTATIONS, context(), links())
    assert sorted(stage.staged["source_id"]) == ["both", "file-only"]
    assert stage.extra["uploads"] is stage.staged or stage.extra["uploads"].equals(stage.staged)
    passwd = row(stage, "file-only")
    assert (passwd["file_name"], passwd["size"], passwd["ref:person_id:persons"]) == ("passwd.txt", 200, "ann")
    assert rejects_of(stage, "file-only") == [("file_name", "safe_file_name")]
    assert stage.extra["manual_uploads"]["source_id"].tolist() == ["huge"]
    assert rejects_of(stage, "huge") == [("*", "file_size_limit")]


@pytest.mark.parametrize(("name", "mime", "safe"), [
    ("../../etc/passwd", "text/plain", "passwd.txt"),
    ("..\\..\\windows\\system32\\drivers\\etc\\hosts", None, "hosts"),
    ('Q3 forecast: final*?"<>|.xlsx', None, "Q3 forecast_ final______.xlsx"),
    ("CON.txt", None, "_CON.txt"),
    ("Ångström résumé – 履歴書.docx", None, "Ångström résumé – 履歴書.docx"),
    ("  .hidden. ", "application/pdf", "hidden.pdf"),
    (None, "image/png", "attachment-abc12345.png"),
    ("x" * 300 + ".pdf", None, "x" * 251 + ".pdf"),
    ("履" * 100 + ".pdf", None, "履" * 83 + ".pdf"),  # 255 bytes of UTF-8, whole characters only
])
def test_safe_file_names(name: str | None, mime: str | None, safe: str) -> None:
    made = safe_file_name(name, "abc12345-0000", mime)
    assert made == safe
    assert len(made.encode("utf-8")) <= 255 and "/" not in made and "\\" not in made
