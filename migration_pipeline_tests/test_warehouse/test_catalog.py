"""The warehouse layout: atomic Parquet tables, DuckDB views and tables, ID maps, the journal."""

from __future__ import annotations

import stat
from pathlib import Path

import pyarrow as pa
import pytest

from migration_pipeline.warehouse.catalog import Warehouse
from migration_pipeline.warehouse.journal import Journal, request_digest
from migration_pipeline.warehouse.parquet import TableWriter, read_frame

SCHEMA = pa.schema([("accountid", pa.string()), ("name", pa.string()), ("revenue", pa.float64())])


def test_home_is_private(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "home")
    assert stat.S_IMODE(warehouse.home.stat().st_mode) == 0o700


def test_table_is_published_only_when_complete(tmp_path: Path) -> None:
    directory = tmp_path / "raw" / "accounts"
    with TableWriter(directory, SCHEMA) as writer:
        writer.write_rows([{"accountid": "a", "name": "A", "revenue": 1.0}])
    with pytest.raises(RuntimeError):
        with TableWriter(directory, SCHEMA) as writer:
            writer.write_rows([{"accountid": "b", "name": "B", "revenue": None}])
            raise RuntimeError("killed mid-extract")
    # The failed second version left the first one intact and no partial directory behind.
    assert read_frame(directory)["accountid"].tolist() == ["a"]
    assert not any(path.name.endswith(".partial") for path in directory.parent.iterdir())


def test_rows_with_missing_keys_become_nulls(tmp_path: Path) -> None:
    directory = tmp_path / "t"
    with TableWriter(directory, SCHEMA) as writer:
        writer.write_rows([{"accountid": "a"}, {"accountid": "b", "name": "B", "extra": 1}])
    frame = read_frame(directory)
    assert frame["name"].isna().tolist() == [True, False]
    assert list(frame.columns) == SCHEMA.names


def test_views_and_idmap(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "home")
    with TableWriter(warehouse.raw_path("accounts"), SCHEMA) as writer:
        writer.write_rows([{"accountid": str(i), "name": f"n{i}", "revenue": float(i)} for i in range(10)])
    assert warehouse.query("SELECT count(*) AS n, sum(revenue) AS s FROM raw.accounts").iloc[0].tolist() == [10, 45.0]
    warehouse.record_ids("organizations", {"1": "100", "2": "200"}, run_id="r1")
    warehouse.record_ids("organizations", {"2": "201"}, run_id="r2")
    assert warehouse.idmap("organizations") == {"1": "100", "2": "201"}
    warehouse.forget_ids("organizations", ["1"])
    assert warehouse.idmap("organizations") == {"2": "201"}


def test_journal_marks_writes_without_outcome_in_doubt(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "home")
    with Journal(warehouse.journal_dir, "run-1") as journal:
        first = journal.intent("create", "organizations", "a", request_digest("POST", "/organizations", {"name": "A"}))
        journal.outcome(first, "ok", pipedrive_id=7)
        journal.intent("create", "organizations", "b", request_digest("POST", "/organizations", {"name": "B"}))
    # A kill mid-write leaves a torn last line; it is skipped, not fatal.
    with (warehouse.journal_dir / "run-1.jsonl").open("a") as file:
        file.write('{"run_id": "run-1", "se')
    assert warehouse.import_journal() == 2
    rows = warehouse.query("SELECT source_id, coalesce(pipedrive_id, '-'), outcome FROM audit.operations ORDER BY source_id")
    assert rows.values.tolist() == [["a", "7", "ok"], ["b", "-", "in_doubt"]]
