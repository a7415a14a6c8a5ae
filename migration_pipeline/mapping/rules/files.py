"""Dynamics annotation attachments -> an upload plan for Pipedrive files (v1 `POST /files`).

Rules:
- Every annotation with an attachment (`isdocument`) is planned for upload to the same parent its
  note would go on (the parent rule is `notes.parent_links`); one whose parent is not migrated
  is rejected. The body is not in the raw tables: the loader fetches it per annotation
  (`annotations(<id>)/documentbody/$value`) and streams it to Pipedrive.
- The file name is made safe: any path is dropped (`../../etc/passwd` -> `passwd`), control
  characters and `<>:"/\\|?*` become `_`, whitespace is collapsed, leading and trailing dots and
  spaces go, Windows device names get a leading `_` (`CON.txt` -> `_CON.txt`), a missing
  extension is taken from the MIME type, and the name is cut to 255 bytes keeping the extension.
  Letters of any script are kept. A changed name is reported (rule `safe_file_name`).
- A file larger than `RuleContext.max_file_bytes` (Pipedrive's 50 MB) is not uploaded: it is
  listed in `manual_uploads` and reported (rule `file_size_limit`). An empty one is rejected.

Staged (also in `extra["uploads"]`, the same frame): source_id (the annotation), file_name,
original_file_name, size, mime_type, and one parent link (`ref:org_id:organizations`,
`ref:person_id:persons`, `ref:deal_id:deals` or `ref:lead_id:leads`).
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata

import pandas as pd

from migration_pipeline.mapping.rules import common
from migration_pipeline.mapping.rules.common import Links, ObjectStage, Outcomes, RuleContext
from migration_pipeline.mapping.rules.notes import PARENTS, parent_links

OBJECT = "files"
NAME_BYTES = 255
UNSAFE_CHARACTERS = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
EXTENSIONS = {
    "application/pdf": "pdf", "image/png": "png", "image/jpeg": "jpg", "text/plain": "txt", "text/csv": "csv",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
}


def transform_files(annotations: pd.DataFrame, context: RuleContext, links: Links) -> ObjectStage:
    """Every attachment planned for upload, listed for manual upload, or rejected."""
    documents = annotations[annotations["isdocument"].fillna(False).astype(bool).to_numpy()].reset_index(drop=True)
    outcomes = Outcomes(OBJECT)
    ids = documents["annotationid"].astype(str)
    original = common.plain_series(documents["filename"])
    mime = common.plain_series(documents["mimetype"])
    safe = [safe_file_name(name, source_id, kind) for name, source_id, kind in zip(original, ids, mime, strict=True)]
    staged = common.frame_of({"source_id": ids}, documents.index)
    staged["file_name"] = safe
    staged["original_file_name"] = original
    staged["size"] = common.plain_series([int(size) if pd.notna(size) else None for size in pd.to_numeric(documents["filesize"], errors="coerce")],
                                         documents.index)
    staged["mime_type"] = mime
    parents = parent_links(documents, ids, links, outcomes)
    for column in PARENTS.values():
        staged[column] = parents[column]
    staged = staged[~parents["orphan"].to_numpy()]

    renamed = staged["file_name"] != staged["original_file_name"]
    outcomes.reject(staged.loc[renamed, "source_id"], "file_name", staged.loc[renamed, "original_file_name"],
                    "unsafe file name; uploaded as " + staged.loc[renamed, "file_name"].map(repr), "safe_file_name")
    size = pd.to_numeric(staged["size"], errors="coerce")
    oversize = size > context.max_file_bytes
    empty = size == 0
    outcomes.reject(staged.loc[oversize, "source_id"], "*", size[oversize],
                    f"larger than Pipedrive's upload limit of {context.max_file_bytes} bytes; listed for manual upload", "file_size_limit")
    outcomes.reject(staged.loc[empty, "source_id"], "*", size[empty], "empty attachment", "empty_file")
    uploads = staged[~oversize & ~empty].reset_index(drop=True)
    return outcomes.stage(uploads, uploads=uploads, manual_uploads=staged[oversize].reset_index(drop=True))


def safe_file_name(name: str | None, source_id: str, mime_type: str | None) -> str:
    """A name every file system and Pipedrive accepts, as close to the original as that allows."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = UNSAFE_CHARACTERS.sub("_", unicodedata.normalize("NFC", base))
    base = " ".join(base.split()).strip(" .")
    stem, dot, extension = base.rpartition(".")
    if not dot or not stem:
        stem, extension = base, ""
    if not extension:
        extension = extension_for(mime_type)
    if stem.split(".")[0].upper() in WINDOWS_DEVICES:
        stem = f"_{stem}"
    if not stem:
        stem = f"attachment-{source_id[:8]}"
    suffix = f".{extension}" if extension else ""
    budget = NAME_BYTES - len(suffix.encode("utf-8"))
    stem = stem.encode("utf-8")[:budget].decode("utf-8", "ignore").rstrip(" .") or f"attachment-{source_id[:8]}"
    return stem + suffix


def extension_for(mime_type: str | None) -> str:
    if not isinstance(mime_type, str):
        return ""
    known = EXTENSIONS.get(mime_type.strip().lower())
    if known:
        return known
    guessed = mimetypes.guess_extension(mime_type.strip().lower()) or ""
    return guessed.lstrip(".")
