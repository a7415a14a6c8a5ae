"""Parquet files under MIGRATION_HOME, written so that a reader never sees half a table.

A table is a directory of part files (`raw/accounts/part-00000.parquet`, ...). `TableWriter`
writes the parts of a new version into a hidden sibling directory as pages arrive (memory
stays flat whatever the table size) and swaps it into place only when the table is complete;
a crash leaves the previous version untouched and the partial one is cleared on the next write.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

ROWS_PER_PART = 250_000


class TableWriter:
    """Streams rows into one Parquet table; `commit()` (or a clean `with` exit) publishes it."""

    def __init__(self, directory: Path, schema: pa.Schema) -> None:
        self.directory = directory
        self.schema = schema
        self.rows_written = 0
        self._staging = directory.with_name(f".{directory.name}.partial")
        if self._staging.exists():
            shutil.rmtree(self._staging)
        self._staging.mkdir(parents=True)
        self._writer: pq.ParquetWriter | None = None
        self._part = 0
        self._rows_in_part = 0

    def write_rows(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Append rows (dicts keyed by column; missing keys are null, unknown keys ignored)."""
        rows = list(rows)
        if not rows:
            return 0
        columns = {name: [row.get(name) for row in rows] for name in self.schema.names}
        return self.write_table(pa.Table.from_pydict(columns, schema=self.schema))

    def attach(self, name: str, text: str) -> None:
        """A small file published with the table (and replaced with it), such as the extract's delta link.

        Its name starts with `_`, which Parquet readers skip.
        """
        if not name.startswith("_"):
            raise ValueError(f"a file attached to a table is named _<something>, not {name!r}")
        (self._staging / name).write_text(text, encoding="utf-8")

    def write_frame(self, frame: pd.DataFrame) -> int:
        # Without pandas' metadata: readers rebuild types from Arrow's own (pandas cannot parse back
        # the names of nested Arrow types such as a list of email structs).
        table = pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False)
        return self.write_table(table.replace_schema_metadata(None))

    def write_table(self, table: pa.Table) -> int:
        if self._writer is None or self._rows_in_part >= ROWS_PER_PART:
            self._open_next_part()
        assert self._writer is not None
        self._writer.write_table(table)
        self._rows_in_part += table.num_rows
        self.rows_written += table.num_rows
        return table.num_rows

    def _open_next_part(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._writer = pq.ParquetWriter(self._staging / f"part-{self._part:05d}.parquet", self.schema)
        self._part += 1
        self._rows_in_part = 0

    def commit(self) -> Path:
        """Publish the table: the old version is replaced by the complete new one."""
        if self._writer is None:  # an empty table still gets one (empty) part, so readers see its columns
            self._open_next_part()
        assert self._writer is not None
        self._writer.close()
        self._writer = None
        retired = self.directory.with_name(f".{self.directory.name}.retired")
        if retired.exists():
            shutil.rmtree(retired)
        if self.directory.exists():
            self.directory.rename(retired)
        self._staging.rename(self.directory)
        if retired.exists():
            shutil.rmtree(retired)
        return self.directory

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        shutil.rmtree(self._staging, ignore_errors=True)

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def write_frame(directory: Path, frame: pd.DataFrame, schema: pa.Schema | None = None) -> Path:
    """Write a whole DataFrame as a table in one go."""
    schema = (schema or pa.Schema.from_pandas(frame, preserve_index=False)).remove_metadata()
    with TableWriter(directory, schema) as writer:
        writer.write_frame(frame)
    return directory


# Integers and booleans with nulls stay integers and booleans (pandas would make them floats and objects).
NULLABLE_TYPES = {pa.int64(): pd.Int64Dtype(), pa.int32(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}


def read_frame(directory: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a table written by `TableWriter`; a table that was never written is an error naming it."""
    if not directory.exists():
        raise FileNotFoundError(f"{directory} has not been written yet")
    return pq.read_table(directory, columns=columns).to_pandas(types_mapper=NULLABLE_TYPES.get)


def sample_frame(directory: Path, rows: int) -> pd.DataFrame:
    """The first `rows` rows of a table, reading no more of it than that."""
    if not directory.exists():
        raise FileNotFoundError(f"{directory} has not been written yet")
    return ds.dataset(directory, format="parquet").head(rows).to_pandas(types_mapper=NULLABLE_TYPES.get)
