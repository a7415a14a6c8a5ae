"""Reconciliation: counts from Dynamics to Pipedrive per object, and what does not add up, on a small warehouse."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from migration_pipeline.steps.reconcile import DUPLICATE, reconcile
from migration_pipeline.validation.diff import RECORD
from migration_pipeline.warehouse.catalog import Warehouse
from migration_pipeline.warehouse.parquet import write_frame


def warehouse_with(tmp_path: Path) -> Warehouse:
    """Five accounts (a1..a5): a1..a3 staged, a4 merged, a5 rejected; one organization from a custom entity (p1).
    Annotations n1..n3: n1 a note, n2 a file, n3 both. a1 and a2 loaded, a3 refused by Pipedrive."""
    warehouse = Warehouse(tmp_path / "home")
    write_frame(warehouse.raw_path("accounts"), pd.DataFrame({"accountid": ["a1", "a2", "a3", "a4", "a5"]}))
    warehouse.write_staged("organizations", pd.DataFrame({"source_id": ["a1", "a2", "a3", "p1"]}))
    write_frame(warehouse.raw_path("annotations"), pd.DataFrame({"annotationid": ["n1", "n2", "n3"]}))
    warehouse.write_staged("notes", pd.DataFrame({"source_id": ["n1", "n3"]}))
    warehouse.write_staged("files", pd.DataFrame({"source_id": ["n2", "n3"]}))
    warehouse.replace_rows("staged.merged", pd.DataFrame([dict(object="organizations", source_id="a4", into_object="organizations",
                                                               into_source_id="a1", rule="duplicate_account")]))
    warehouse.replace_rows("staged.rejects", pd.DataFrame([
        dict(object="organizations", source_id="a5", field="*", value=None, reason="no name", rule="required"),
        dict(object="organizations", source_id="a3", field="*", value=None, reason="Pipedrive refused the record", rule="load"),
        dict(object="organizations", source_id="a1", field="website", value="x", reason="not a URL", rule="url"),
    ]))
    warehouse.record_ids("organizations", {"a1": "11", "a2": "12", "p1": "13"}, "run")
    warehouse.record_ids("notes", {"n1": "21", "n3": "22"}, "run")
    summary = [dict(object="organizations", field=RECORD, compared=3, equal=3, differing=0, missing=0),
               dict(object="notes", field=RECORD, compared=2, equal=1, differing=0, missing=1)]
    warehouse.replace_rows("validation.summary", pd.DataFrame(summary))
    return warehouse


def test_counts_add_up_from_source_to_pipedrive(tmp_path: Path) -> None:
    warehouse = warehouse_with(tmp_path)
    [organizations] = reconcile(warehouse, ["organizations"])
    assert (organizations.source, organizations.accounted, organizations.unaccounted, organizations.from_elsewhere) == (5, 5, 0, 1)
    assert (organizations.staged, organizations.merged, organizations.rejected, organizations.refused) == (4, 1, 1, 1)
    assert (organizations.loaded, organizations.to_load, organizations.present, organizations.missing) == (3, 0, 3, 0)
    assert organizations.adds_up and organizations.complete and organizations.problems == []
    stored = warehouse.query("SELECT object, adds_up, complete FROM validation.reconciliation")
    assert stored.to_dict("records") == [dict(object="organizations", adds_up=True, complete=True)]


def test_objects_sharing_a_source_table_account_for_it_together(tmp_path: Path) -> None:
    warehouse = warehouse_with(tmp_path)
    notes, files = reconcile(warehouse, ["notes", "files"])
    assert (notes.source, notes.accounted, notes.unaccounted) == (3, 2, 0)
    assert (files.source, files.accounted, files.unaccounted) == (3, 2, 0)
    assert files.to_load == 2 and not files.complete  # nothing loaded yet: left to load, which is no failure
    assert files.adds_up


def test_what_does_not_add_up_is_said(tmp_path: Path) -> None:
    warehouse = warehouse_with(tmp_path)
    write_frame(warehouse.raw_path("annotations"), pd.DataFrame({"annotationid": ["n1", "n2", "n3", "n4"]}))  # n4: lost
    warehouse.replace_rows("validation.field_diff", pd.DataFrame([dict(object="notes", source_id="n1", pipedrive_id="23",
                                                                       field=DUPLICATE, expected="21", actual="23", rule="duplicate")]))
    [notes] = reconcile(warehouse, ["notes"])
    assert notes.unaccounted == 1 and notes.missing == 1 and notes.duplicates == 1
    assert not notes.adds_up
    assert [problem.split(" ", 1)[1] for problem in notes.problems] == [
        "source rows no object staged, merged or rejected",
        "loaded records are not in Pipedrive",
        "records in Pipedrive carry a Dynamics ID no ID map knows (duplicates)",
    ]
    stored = warehouse.query("SELECT problems FROM validation.reconciliation WHERE object = 'notes'").iloc[0, 0]
    assert "1 loaded records are not in Pipedrive" in stored
