"""The migration report: what moved, what was rejected and why, and the diff, in Markdown people read."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from html import escape
from pathlib import Path

import pandas as pd

from migration_pipeline.steps.verify import ARCHIVE, VERIFIED
from migration_pipeline.warehouse.catalog import Warehouse


def object_counts(warehouse: Warehouse) -> pd.DataFrame:
    """Per object: source rows, staged, rejected, loaded, left to load, present in Pipedrive, and values differing,
    from the reconciliation the checks wrote (`validation.reconciliation`) and the diff (`validation.field_diff`)."""
    return warehouse.query(
        "SELECT r.object, r.source, r.staged, r.merged, r.rejected, r.refused, r.loaded, r.to_load, r.present, "
        "(SELECT count(*) FROM validation.field_diff d WHERE d.object = r.object) AS differences, r.adds_up "
        "FROM validation.reconciliation r ORDER BY r.object"
    )


def write_migration_report(warehouse: Warehouse, run_id: str, at: datetime) -> Path:
    counts = object_counts(warehouse)
    rejects = warehouse.query(
        "SELECT object, field, reason, count(*) AS records FROM staged.rejects GROUP BY ALL ORDER BY object, records DESC"
    )
    summary = warehouse.query("SELECT object, field, compared, equal, differing, missing FROM validation.summary ORDER BY object, field")
    text = "\n\n".join(
        [
            f"# Migration report\n\nRun `{run_id}`, {at:%Y-%m-%d %H:%M} UTC. Field by field, with the first differences "
            f"side by side: `diff-{run_id}.md` and `diff-{run_id}.html` beside this file.",
            "## Records per object\n\n" + counts.to_markdown(index=False),
            "## Rejected values\n\n" + (rejects.to_markdown(index=False) if len(rejects) else "None."),
            "## Field-level diff\n\n" + (summary.to_markdown(index=False) if len(summary) else "Not verified yet."),
        ]
    )
    path = warehouse.reports_dir / f"migration-{run_id}.md"
    path.write_text(text + "\n", encoding="utf-8")
    return path


FIRST_DIFFERENCES = 5  # per object and field, side by side in the diff report
DIFF_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:0.5em 0 1.5em}"
    "th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f3f3f3}"
    "td.bad{background:#fde2e2}td.good{background:#e6f4ea}pre{margin:0;white-space:pre-wrap;max-width:40em}"
)


@dataclass
class DiffReport:
    markdown: Path
    html: Path
    differences: int  # rows of validation.field_diff: values differing, records missing, duplicates
    problems: int  # objects whose reconciliation does not add up


def write_diff_report(warehouse: Warehouse, run_id: str, at: datetime) -> DiffReport:
    """`reports/diff-<run>.md` and `.html`: reconciliation, the per-object per-field summary, and the first
    differences of every field side by side, so a reviewer sees in one page what would go wrong at scale."""
    reconciliation = warehouse.query(
        "SELECT object, source, accounted, unaccounted, from_elsewhere, staged, merged, rejected, refused, loaded, to_load, "
        "present, missing, duplicates, adds_up, problems FROM validation.reconciliation ORDER BY object"
    )
    summary = warehouse.query(
        "SELECT object, field, compared, equal, differing, missing FROM validation.summary ORDER BY object, field"
    )
    first = warehouse.query(
        "SELECT object, field, source_id, pipedrive_id, expected, actual, rule FROM ("
        " SELECT *, row_number() OVER (PARTITION BY object, field ORDER BY source_id) AS n FROM validation.field_diff"
        ") WHERE n <= ? ORDER BY object, field, source_id",
        [FIRST_DIFFERENCES],
    )
    total = int(warehouse.query("SELECT count(*) AS n FROM validation.field_diff").iloc[0, 0])
    problems = int((~reconciliation["adds_up"].astype(bool)).sum()) if len(reconciliation) else 0
    verdict = (
        f"**{total:,} differences** and {problems} objects that do not reconcile." if total or problems
        else "**Clean**: every compared field matches, and every object reconciles."
    )
    heading = f"Run `{run_id}`, {at:%Y-%m-%d %H:%M} UTC. {verdict}"
    sections = [
        ("Reconciliation", "Counts per object from Dynamics to Pipedrive (validation.reconciliation).", reconciliation),
        ("Field by field", "Per object and field: values compared, equal, differing, records missing (validation.summary).", summary),
        (f"First differences (up to {FIRST_DIFFERENCES} per field)", "Expected is what the confirmed plan says Pipedrive should "
         "hold; actual is what it holds (validation.field_diff has every row).", first),
    ]
    stem = warehouse.reports_dir / f"diff-{run_id}"
    markdown = stem.with_suffix(".md")
    markdown.write_text(
        f"# Verification report\n\n{heading}\n\n"
        + "\n\n".join(f"## {title}\n\n{note}\n\n{frame.to_markdown(index=False) if len(frame) else 'None.'}" for title, note, frame in sections)
        + "\n",
        encoding="utf-8",
    )
    page = stem.with_suffix(".html")
    page.write_text(_html_page(f"Verification report {run_id}", heading, sections), encoding="utf-8")
    return DiffReport(markdown, page, total, problems)


def _html_page(title: str, heading: str, sections: list[tuple[str, str, pd.DataFrame]]) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title><style>{DIFF_STYLE}</style>"
             f"</head><body><h1>Verification report</h1><p>{_bold(escape(heading))}</p>"]
    for name, note, frame in sections:
        parts.append(f"<h2>{escape(name)}</h2><p>{escape(note)}</p>")
        parts.append(_html_table(frame) if len(frame) else "<p>None.</p>")
    return "".join(parts) + "</body></html>\n"


def _html_table(frame: pd.DataFrame) -> str:
    """A table whose bad cells (differing, missing, duplicates, unaccounted > 0; adds_up false) are red, and
    whose expected and actual values sit side by side as preformatted text."""
    flagged = {"differing", "missing", "duplicates", "unaccounted"}
    rows = ["<table><tr>" + "".join(f"<th>{escape(str(column))}</th>" for column in frame.columns) + "</tr>"]
    for record in frame.to_dict("records"):
        cells = []
        for column, value in record.items():
            text = "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
            css = ""
            if (column in flagged and text not in ("", "0")) or (column == "adds_up" and text == "False"):
                css = " class='bad'"
            elif column == "adds_up":
                css = " class='good'"
            body = f"<pre>{escape(text)}</pre>" if column in ("expected", "actual") else escape(text)
            cells.append(f"<td{css}>{body}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return "".join(rows) + "</table>"


def _bold(text: str) -> str:
    """The one Markdown emphasis the heading uses, as HTML."""
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)


def verification_lines(warehouse: Warehouse, run_id: str, brief: bool = False) -> tuple[list[str], list[str]]:
    """What `migrate verify` prints of run `run_id`: a line per object (records compared, values differing,
    records missing, the reconciliation, tokens), the fields that differ with a first example, the report;
    and the objects that failed. `brief`: when nothing failed, one line for all objects instead."""
    per_object = warehouse.query(
        "SELECT object, coalesce(sum(compared) FILTER (WHERE field IN ('(record)', '(linked existing)')), max(compared), 0) AS records, "
        "coalesce(sum(differing), 0) AS differing, coalesce(sum(missing), 0) AS missing FROM validation.summary GROUP BY object"
    ).set_index("object")
    reconciled = warehouse.query("SELECT object, adds_up, complete, to_load, problems FROM validation.reconciliation").set_index("object")
    tokens = dict(warehouse.query("SELECT step, tokens FROM audit.runs WHERE run_id = ?", [run_id]).itertuples(index=False))
    differing_fields = warehouse.query(
        "SELECT object, field, count(*) AS n, min_by(source_id || ': expected ' || coalesce(expected, 'nothing') || ', found ' "
        "|| coalesce(actual, 'nothing'), source_id) AS example FROM validation.field_diff GROUP BY object, field ORDER BY object, n DESC"
    )
    lines, failed = [], []
    width = max((len(name) for name in per_object.index), default=0)
    for name in sorted(per_object.index, key=lambda name: VERIFIED.index(name) if name in VERIFIED else len(VERIFIED)):
        row = per_object.loc[name]
        counts = reconciled.loc[name] if name in reconciled.index and name != ARCHIVE else None
        if counts is None:
            reconciliation = ""
        elif not counts["adds_up"]:
            reconciliation = f"; counts do not add up: {counts['problems']}"
        else:
            reconciliation = "; counts add up" + ("" if counts["complete"] else f", {int(counts['to_load']):,} left to load")
        spent = tokens.get(f"verify pipedrive/{name}")
        lines.append(f"  {name:<{width}}  {int(row['records']):>7,} records, {int(row['differing']):,} values differing, "
                     f"{int(row['missing']):,} missing{reconciliation}" + (f" ({spent:,} tokens)" if spent is not None else ""))
        for item in differing_fields[differing_fields["object"] == name].itertuples():
            lines.append(f"      {item.field}: {item.n:,} ({_cut(item.example)})")
        if int(row["differing"]) or int(row["missing"]) or (counts is not None and not counts["adds_up"]) or \
                (differing_fields["object"] == name).any():
            failed.append(name)
    if brief and not failed:
        records = int(per_object.drop(index=ARCHIVE, errors="ignore")["records"].sum())
        left = int(reconciled["to_load"].drop(index=ARCHIVE, errors="ignore").sum()) if len(reconciled) else 0
        lines = [f"  {records:,} records of {len(per_object)} objects compared field by field: 0 values differing, 0 missing; "
                 "every count adds up" + (f" ({left:,} records left to load)" if left else "")]
    if tokens:
        lines.append(f"  {sum(tokens.values()):,} tokens in all")
    report = warehouse.reports_dir / f"diff-{run_id}.md"
    if report.exists():
        lines.append(f"  report: {report} (and {report.with_suffix('.html').name} beside it)")
    return lines, failed


def _cut(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
