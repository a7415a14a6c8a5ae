"""The diff report: one page with the reconciliation, the per-field summary and the first differences side by side."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from migration_pipeline.steps.reconcile import reconcile
from migration_pipeline.steps.report import FIRST_DIFFERENCES, write_diff_report
from migration_pipeline.validation.diff import RECORD
from migration_pipeline.warehouse.catalog import Warehouse
from migration_pipeline.warehouse.parquet import write_frame

AT = datetime(2026, 12, 5, 9, 30, tzinfo=UTC)


def loaded_persons(tmp_path: Path, emails_differing: int) -> Warehouse:
    warehouse = Warehouse(tmp_path / "home")
    ids = [f"c{i}" for i in range(10)]
    write_frame(warehouse.raw_path("contacts"), pd.DataFrame({"contactid": ids}))
    warehouse.write_staged("persons", pd.DataFrame({"source_id": ids}))
    warehouse.record_ids("persons", {source_id: str(100 + i) for i, source_id in enumerate(ids)}, "run")
    diff = [dict(object="persons", source_id=f"c{i}", pipedrive_id=str(100 + i), field="email",
                 expected=f'[{{"value": "p{i}@example.com"}}]', actual="<script>x</script>", rule="value")
            for i in range(emails_differing)]
    warehouse.replace_rows("validation.field_diff", pd.DataFrame(diff, columns=["object", "source_id", "pipedrive_id", "field",
                                                                               "expected", "actual", "rule"]))
    warehouse.replace_rows("validation.summary", pd.DataFrame([
        dict(object="persons", field=RECORD, compared=10, equal=10, differing=0, missing=0),
        dict(object="persons", field="email", compared=10, equal=10 - emails_differing, differing=emails_differing, missing=0),
    ]))
    reconcile(warehouse, ["persons"])
    return warehouse


def test_the_report_shows_the_first_differences_of_each_field_side_by_side(tmp_path: Path) -> None:
    report = write_diff_report(loaded_persons(tmp_path, emails_differing=8), "run-1", AT)
    assert report.differences == 8 and report.problems == 0
    assert report.markdown.name == "diff-run-1.md" and report.html.name == "diff-run-1.html"
    text = report.markdown.read_text()
    assert "**8 differences**" in text
    shown = [f"c{i}" for i in range(8) if f"| c{i} " in text]
    assert shown == [f"c{i}" for i in range(FIRST_DIFFERENCES)]  # the first few of the field, not all eight
    page = report.html.read_text()
    assert "<strong>8 differences</strong>" in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page and "<script>" not in page  # Pipedrive's values are escaped
    assert "<td class='bad'>8</td>" in page  # the differing count of the email row stands out
    assert page.count("p0@example.com") == 1


def test_a_clean_verification_says_so(tmp_path: Path) -> None:
    report = write_diff_report(loaded_persons(tmp_path, emails_differing=0), "run-2", AT)
    assert report.differences == 0 and report.problems == 0
    assert "**Clean**" in report.markdown.read_text()
    assert "<td class='good'>True</td>" in report.html.read_text()
