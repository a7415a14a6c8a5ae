"""Extract: every Dataverse table in scope -> `raw/<entity_set>/*.parquet`, page by page, several at once.

The column list and types come from the table's metadata, so every page is written with the
same Parquet schema (an all-null page cannot change a column's type) and `$select` stays
tight. Lookups and choices keep their annotations as their own columns: `<col>__table` is a
polymorphic lookup's target table, `<col>__label` the formatted value (option label or the
related record's name).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from queue import Full, Queue
from typing import Any, TypeVar

import pyarrow as pa

from migration_pipeline.dynamics.client import DataverseClient
from migration_pipeline.dynamics.models import AttributeDefinition
from migration_pipeline.errors import PermissionDenied
from migration_pipeline.progress import Progress
from migration_pipeline.steps.objects import STANDARD_TABLES
from migration_pipeline.warehouse.catalog import Warehouse
from migration_pipeline.warehouse.journal import utc_now
from migration_pipeline.warehouse.parquet import TableWriter, read_frame

log = logging.getLogger(__name__)
T = TypeVar("T")

FORMATTED = "@OData.Community.Display.V1.FormattedValue"
LOGICAL_NAME = "@Microsoft.Dynamics.CRM.lookuplogicalname"
ANNOTATIONS = "OData.Community.Display.V1.FormattedValue,Microsoft.Dynamics.CRM.lookuplogicalname"

LOOKUP_TYPES = {"Lookup", "Customer", "Owner"}
CHOICE_TYPES = {"Picklist", "State", "Status"}
ARROW_TYPES: dict[str, pa.DataType] = {
    "Integer": pa.int64(),
    "BigInt": pa.int64(),
    "Picklist": pa.int64(),
    "State": pa.int64(),
    "Status": pa.int64(),
    "Money": pa.float64(),
    "Decimal": pa.float64(),
    "Double": pa.float64(),
    "Boolean": pa.bool_(),
}
# Types with no value to select: computed party lists, calendar rules, images and other virtual columns.
UNSELECTABLE = {"PartyList", "CalendarRules", "ManagedProperty", "Virtual"}
# File bodies never travel in list queries (a page of them would be gigabytes): the load fetches
# each one on its own, through `annotations(id)/documentbody/$value`.
FILE_BODY_COLUMNS = {("annotation", "documentbody")}


@dataclass(frozen=True)
class Column:
    """One column of the raw table: its wire name, where its value comes from in a row, and its type."""

    name: str
    key: str
    type: pa.DataType


def raw_columns(logical_name: str, attributes: list[AttributeDefinition]) -> list[Column]:
    """The raw columns of table `logical_name`, from its attributes, in a stable order."""
    columns: list[Column] = []
    for attribute in sorted(attributes, key=lambda a: (not a.is_primary_id, a.logical_name)):
        kind = attribute.attribute_type or ""
        if not attribute.is_valid_for_read or attribute.attribute_of or kind in UNSELECTABLE:
            continue
        if (logical_name, attribute.logical_name) in FILE_BODY_COLUMNS:
            continue
        if kind in LOOKUP_TYPES:
            wire = f"_{attribute.logical_name}_value"
            columns += [
                Column(wire, wire, pa.string()),
                Column(f"{wire}__table", wire + LOGICAL_NAME, pa.string()),
                Column(f"{wire}__label", wire + FORMATTED, pa.string()),
            ]
        else:
            columns.append(Column(attribute.logical_name, attribute.logical_name, ARROW_TYPES.get(kind, pa.string())))
            if kind in CHOICE_TYPES or (attribute.attribute_type_name and attribute.attribute_type_name.value == "MultiSelectPicklistType"):
                columns.append(Column(f"{attribute.logical_name}__label", attribute.logical_name + FORMATTED, pa.string()))
    return columns


@dataclass(frozen=True)
class TableRef:
    """A Dataverse table to extract: its logical name, its entity set, and whether it tracks changes."""

    logical_name: str
    entity_set: str
    track_changes: bool = False


@dataclass
class ExtractResult:
    entity_set: str
    rows: int
    columns: int
    pages: int
    seconds: float
    delta_link: str | None = None


CURSOR_FILE = "_cursor.json"
# Tables read only for the audit's inventory of what must be rebuilt by hand: an identity that
# may not read them loses a line of the scope report, not the extract.
INVENTORY_ONLY = {"workflow", "sdkmessageprocessingstep"}
SCHEMA_ENTITIES = "schema_entities"


def scope_tables(home: Path) -> list[TableRef]:
    """The tables to extract from the environment whose data lives under `home` (MIGRATION_HOME).

    Once schema discovery has stored `raw.schema_entities`, that is the scope: every standard
    table of `STANDARD_TABLES`, then every custom entity and N:N intersect, each with its
    change-tracking flag. Before discovery, the standard tables alone. Reads files only, so the
    Dagster definitions can call it when they load. A table this identity may not read stays in
    scope, so that its extract fails with the privilege to grant (`PermissionDenied`) instead of
    the migration silently leaving it out; only the inventory-only tables are dropped then.
    """
    directory = home / "raw" / SCHEMA_ENTITIES
    if not directory.exists():
        return [TableRef(logical, entity_set) for logical, entity_set in STANDARD_TABLES]
    entities = read_frame(directory).set_index("logical_name")
    wanted = entities["readable"].astype(bool) | ~entities.index.isin(sorted(INVENTORY_ONLY))
    entities = entities[wanted & entities["entity_set_name"].notna()]
    standard = [name for name, _ in STANDARD_TABLES if name in entities.index]
    custom = sorted(entities.index[entities["is_custom_entity"].astype(bool)])
    return [
        TableRef(name, str(entities.at[name, "entity_set_name"]), bool(entities.at[name, "change_tracking_enabled"]))
        for name in [*standard, *(name for name in custom if name not in standard)]
    ]


def extract_table(client: DataverseClient, warehouse: Warehouse, table: TableRef) -> ExtractResult:
    """Stream every row of one table into its raw Parquet table; the old version stays until this one is whole.

    Pages are fetched one ahead of the writer, so the network wait overlaps with Parquet
    encoding, and memory holds at most a few pages whatever the table's size. A table that
    tracks changes is read as a change-tracking full sync: its last page's delta link is kept
    beside the table (`_cursor.json`), where the delta pickup starts from.
    """
    started = time.monotonic()
    columns = raw_columns(table.logical_name, client.attributes(table.logical_name))
    schema = pa.schema([(column.name, column.type) for column in columns])
    select = [column.key for column in columns if "@" not in column.key]
    pages = 0
    delta_link: str | None = None
    previous = read_cursor(warehouse, table.entity_set)  # the last extract's row count: the ETA's estimate
    expected = int(previous["rows"]) if previous and previous.get("rows") is not None else None
    with TableWriter(warehouse.raw_path(table.entity_set), schema) as writer, \
            Progress(f"extract {table.entity_set}", total=expected, unit="rows", logger=log) as progress:
        reading = client.iter_pages(table.entity_set, select=select, annotations=ANNOTATIONS, track_changes=table.track_changes)
        for page in prefetched(reading):
            writer.write_rows({column.name: row.get(column.key) for column in columns} for row in page.rows)
            pages += 1
            delta_link = page.delta_link or delta_link
            progress.advance(len(page.rows))
        cursor = {"extracted_at": utc_now(), "rows": writer.rows_written, "delta_link": delta_link}
        writer.attach(CURSOR_FILE, json.dumps(cursor, indent=2))
        rows = writer.rows_written
    return ExtractResult(table.entity_set, rows, len(columns), pages, time.monotonic() - started, delta_link)


def read_cursor(warehouse: Warehouse, entity_set: str) -> dict[str, Any] | None:
    """What the last extract of `entity_set` recorded (rows, time, delta link), or None if never extracted."""
    path = warehouse.raw_path(entity_set) / CURSOR_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


@dataclass
class ExtractFailure:
    entity_set: str
    error: Exception


@dataclass
class ExtractSkipped:
    """An inventory-only table this identity may not read: a line missing from the audit, not a failed extract."""

    entity_set: str
    reason: str


def extract_tables(
    client: DataverseClient, warehouse: Warehouse, tables: Sequence[TableRef], workers: int = 4
) -> Iterator[ExtractResult | ExtractFailure | ExtractSkipped]:
    """Extract several tables concurrently, yielding each result as its table completes.

    The workers share one client, so they share its token and the identity's pause gate: a
    429 with Retry-After on any of them pauses all. One table failing does not stop the
    others; its failure is yielded for the caller to report.
    """
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(tables))), thread_name_prefix="extract") as pool:
        futures = {pool.submit(extract_table, client, warehouse, table): table for table in tables}
        for future in as_completed(futures):
            error = future.exception()
            if error is None:
                yield future.result()
            elif isinstance(error, PermissionDenied) and futures[future].logical_name in INVENTORY_ONLY:
                log.warning("extract %s: skipped, this identity may not read it", futures[future].entity_set)
                yield ExtractSkipped(futures[future].entity_set, error.message)
            elif isinstance(error, Exception):
                yield ExtractFailure(futures[future].entity_set, error)
            else:
                raise error


_DONE = object()


def prefetched(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """`items`, produced up to `depth` ahead in a background thread.

    An error in the producer is raised to the consumer at the point it happened; a consumer that
    stops early stops the producer at its next item.
    """
    queue: Queue[object] = Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as error:  # handed to the consumer, which re-raises it
            put(_Failed(error))

    producer = threading.Thread(target=produce, name="prefetch", daemon=True)
    producer.start()
    try:
        while True:
            item = queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        producer.join(timeout=5)


@dataclass
class _Failed:
    error: BaseException
