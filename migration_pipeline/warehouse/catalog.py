"""The DuckDB catalog analysts query, and the files it describes, under MIGRATION_HOME.

`raw.<entity_set>` and `staged.<object>` are views over the Parquet tables, so they are
always exactly what is on disk. The ID maps, rejects, audit trail and diff results are
DuckDB tables. DuckDB allows one writing process, so connections are opened late and closed
early (`with warehouse.connect() as con:`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from migration_pipeline.warehouse.journal import read_entries
from migration_pipeline.warehouse.parquet import read_frame, sample_frame, write_frame

SCHEMAS = ("raw", "staged", "idmap", "audit", "validation", "plan")

TABLES = {
    "staged.rejects": "object VARCHAR, source_id VARCHAR, field VARCHAR, value VARCHAR, reason VARCHAR, rule VARCHAR",
    "staged.merged": "object VARCHAR, source_id VARCHAR, into_object VARCHAR, into_source_id VARCHAR, rule VARCHAR",
    "audit.operations": (
        "run_id VARCHAR, seq BIGINT, \"at\" TIMESTAMPTZ, operation VARCHAR, object VARCHAR, source_id VARCHAR, "
        "pipedrive_id VARCHAR, request_digest VARCHAR, before_image JSON, outcome VARCHAR, detail VARCHAR"
    ),
    # One row per (run, step) that called Pipedrive: `steps/accounting.py` writes it, `migrate status` reads it.
    "audit.runs": (
        '"run_id" VARCHAR, "step" VARCHAR, "started_at" TIMESTAMPTZ, "finished_at" TIMESTAMPTZ, "seconds" DOUBLE, '
        '"requests" BIGINT, "tokens" BIGINT, "rate_limited" BIGINT, "retries" BIGINT, "requests_by_operation" JSON, '
        '"tokens_by_operation" JSON, "tokens_by_object" JSON, "daily_token_limit" BIGINT, "daily_tokens_remaining" BIGINT, '
        '"daily_requests_left" BIGINT, "counts" JSON'
    ),
    "validation.field_diff": (
        "object VARCHAR, source_id VARCHAR, pipedrive_id VARCHAR, field VARCHAR, expected VARCHAR, actual VARCHAR, rule VARCHAR"
    ),
    # One row per object: the counts from Dynamics to Pipedrive (`steps/reconcile.py`).
    "validation.reconciliation": (
        "object VARCHAR, source BIGINT, accounted BIGINT, unaccounted BIGINT, from_elsewhere BIGINT, staged BIGINT, merged BIGINT, rejected BIGINT, "
        "refused BIGINT, loaded BIGINT, to_load BIGINT, present BIGINT, missing BIGINT, duplicates BIGINT, adds_up BOOLEAN, "
        "complete BOOLEAN, problems VARCHAR, checked_at TIMESTAMPTZ"
    ),
    "validation.summary": (
        "object VARCHAR, field VARCHAR, compared BIGINT, equal BIGINT, differing BIGINT, missing BIGINT, checked_at TIMESTAMPTZ"
    ),
}

IDMAP_COLUMNS = "source_id VARCHAR PRIMARY KEY, pipedrive_id VARCHAR, run_id VARCHAR, loaded_at TIMESTAMPTZ"

# Catalogs this process has already put in place, by (database file, its inode, the Parquet tables on disk):
# a load opens a connection per ID-map write, and re-creating three dozen views each time cost 60 ms apiece.
_ENSURED: set[tuple[str, int, frozenset[tuple[str, str]]]] = set()


class Warehouse:
    """The layout of MIGRATION_HOME: Parquet tables, reports, journals and `warehouse.duckdb`."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        # MIGRATION_HOME holds customer data: readable by its owner only.
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.home, 0o700)
        for sub in ("raw", "staged", "reports", "journal"):
            (self.home / sub).mkdir(exist_ok=True, mode=0o700)

    # -- files --------------------------------------------------------------------------------
    def raw_path(self, entity_set: str) -> Path:
        return self.home / "raw" / entity_set

    def staged_path(self, object_name: str) -> Path:
        return self.home / "staged" / object_name

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def journal_dir(self) -> Path:
        return self.home / "journal"

    @property
    def database_path(self) -> Path:
        return self.home / "warehouse.duckdb"

    def read_raw(self, entity_set: str, columns: list[str] | None = None) -> pd.DataFrame:
        return read_frame(self.raw_path(entity_set), columns)

    def sample_raw(self, entity_set: str, rows: int) -> pd.DataFrame:
        """The first `rows` rows of a raw table, read without loading the rest."""
        return sample_frame(self.raw_path(entity_set), rows)

    def read_staged(self, object_name: str) -> pd.DataFrame:
        return read_frame(self.staged_path(object_name))

    def write_staged(self, object_name: str, frame: pd.DataFrame) -> Path:
        return write_frame(self.staged_path(object_name), frame)

    # -- DuckDB -------------------------------------------------------------------------------
    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection with every schema, table and view in place."""
        if read_only and not self.database_path.exists():
            read_only = False
        con = duckdb.connect(str(self.database_path), read_only=read_only)
        try:
            if not read_only:
                self._ensure_catalog(con)
            yield con
        finally:
            con.close()

    def _parquet_tables(self) -> frozenset[tuple[str, str]]:
        """(schema, table) for every Parquet table on disk under raw/ and staged/."""
        return frozenset(
            (schema, directory.name)
            for schema in ("raw", "staged")
            for directory in (self.home / schema).iterdir()
            if directory.is_dir() and not directory.name.startswith(".") and any(directory.glob("*.parquet"))
        )

    def _ensure_catalog(self, con: duckdb.DuckDBPyConnection) -> None:
        """Schemas, the fixed tables, and a view per Parquet table; skipped when this process already did it for
        the same database file and the same tables (the views read by glob, so new files need no new view)."""
        tables = self._parquet_tables()
        key = (str(self.database_path.resolve()), self.database_path.stat().st_ino, tables)
        if key in _ENSURED:
            return
        for schema in SCHEMAS:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        for name, columns in TABLES.items():
            con.execute(f"CREATE TABLE IF NOT EXISTS {name} ({columns})")
        for schema, table in sorted(tables):
            pattern = str((self.home / schema / table).resolve() / "*.parquet").replace("'", "''")
            con.execute(
                f'CREATE OR REPLACE VIEW {schema}."{table}" AS '
                f"SELECT * FROM read_parquet('{pattern}', union_by_name = true)"
            )
        _ENSURED.add(key)

    # -- ID maps ------------------------------------------------------------------------------
    def _ensure_idmap(self, con: duckdb.DuckDBPyConnection, object_name: str) -> str:
        table = f'idmap."{object_name}"'
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({IDMAP_COLUMNS})")
        return table

    def idmap(self, object_name: str) -> dict[str, str]:
        """source id -> Pipedrive id for everything of this object the migration has linked."""
        return self.idmaps([object_name])[object_name]

    def idmaps(self, object_names: Iterable[str]) -> dict[str, dict[str, str]]:
        """`idmap` of several objects, read through one connection."""
        with self.connect() as con:
            return {
                name: dict(con.execute(f"SELECT source_id, pipedrive_id FROM {self._ensure_idmap(con, name)}").fetchall())
                for name in object_names
            }

    def record_ids(self, object_name: str, pairs: dict[str, str], run_id: str) -> None:
        """Upsert source id -> Pipedrive id pairs."""
        if not pairs:
            return
        frame = pd.DataFrame(
            {
                "source_id": list(pairs),
                "pipedrive_id": [str(value) for value in pairs.values()],
                "run_id": run_id,
                "loaded_at": datetime.now(UTC),
            }
        )
        with self.connect() as con:
            table = self._ensure_idmap(con, object_name)
            con.register("incoming", frame)
            con.execute(f"INSERT OR REPLACE INTO {table} SELECT source_id, pipedrive_id, run_id, loaded_at FROM incoming")
            con.unregister("incoming")

    def forget_ids(self, object_name: str, source_ids: list[str]) -> None:
        with self.connect() as con:
            table = self._ensure_idmap(con, object_name)
            con.execute(f"DELETE FROM {table} WHERE source_id IN (SELECT unnest(?))", [source_ids])

    # -- whole-table replacements --------------------------------------------------------------
    def replace_rows(self, table: str, frame: pd.DataFrame, where: str | None = None, params: list[object] | None = None) -> None:
        """Delete the rows matching `where` (all rows when None) and insert `frame` in one transaction."""
        with self.connect() as con:
            con.execute("BEGIN")
            con.execute(f"DELETE FROM {table}" + (f" WHERE {where}" if where else ""), params or [])
            if len(frame):
                con.register("incoming", frame)
                columns = ", ".join(f'"{column}"' for column in frame.columns)
                con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM incoming")
                con.unregister("incoming")
            con.execute("COMMIT")

    def query(self, sql: str, params: list[object] | None = None) -> pd.DataFrame:
        with self.connect() as con:
            return con.execute(sql, params or []).df()

    def import_journal(self) -> int:
        """Rebuild `audit.operations` from the journal files: one row per write with its outcome."""
        intents: dict[tuple[str, int], dict[str, object]] = {}
        for entry in read_entries(self.journal_dir):
            key = (entry["run_id"], entry["seq"])
            if entry["phase"] == "intent":
                intents[key] = {**entry, "outcome": "in_doubt"}
            elif key in intents:
                intents[key].update(
                    pipedrive_id=entry.get("pipedrive_id"), outcome=entry.get("outcome"), detail=entry.get("detail")
                )
        columns = ["run_id", "seq", "at", "operation", "object", "source_id", "pipedrive_id", "request_digest", "before_image", "outcome", "detail"]
        frame = pd.DataFrame([{column: row.get(column) for column in columns} for row in intents.values()], columns=columns)
        frame["before_image"] = frame["before_image"].map(lambda value: None if value is None else json.dumps(value))
        frame["at"] = pd.to_datetime(frame["at"], utc=True)
        self.replace_rows("audit.operations", frame)
        return len(frame)
