"""Extract: one Dataverse table -> `raw/<entity_set>/*.parquet`, page by page.

The column list and types come from the table's metadata, so every page is written with the
same Parquet schema (an all-null page cannot change a column's type) and `$select` stays
tight. Lookups and choices keep their annotations as their own columns: `<col>__table` is a
polymorphic lookup's target table, `<col>__label` the formatted value (option label or the
related record's name).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import pyarrow as pa

from migration_pipeline.dynamics.client import DataverseClient
from migration_pipeline.dynamics.models import AttributeDefinition
from migration_pipeline.warehouse.catalog import Warehouse
from migration_pipeline.warehouse.parquet import TableWriter

log = logging.getLogger(__name__)

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
UNSELECTABLE = {"PartyList", "CalendarRules", "ManagedProperty", "Virtual", "EntityName"}


@dataclass(frozen=True)
class Column:
    """One column of the raw table: its wire name, where its value comes from in a row, and its type."""

    name: str
    key: str
    type: pa.DataType


def raw_columns(attributes: list[AttributeDefinition]) -> list[Column]:
    """The raw table's columns for a table's attributes, in a stable order."""
    columns: list[Column] = []
    for attribute in sorted(attributes, key=lambda a: (not a.is_primary_id, a.logical_name)):
        kind = attribute.attribute_type or ""
        if not attribute.is_valid_for_read or attribute.attribute_of or kind in UNSELECTABLE:
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


@dataclass
class ExtractResult:
    entity_set: str
    rows: int
    columns: int
    pages: int
    seconds: float


def extract_table(client: DataverseClient, warehouse: Warehouse, logical_name: str, entity_set: str) -> ExtractResult:
    """Stream every row of one table into its raw Parquet table; the old version stays until this one is whole."""
    started = time.monotonic()
    columns = raw_columns(client.attributes(logical_name))
    schema = pa.schema([(column.name, column.type) for column in columns])
    select = [column.key for column in columns if "@" not in column.key]
    pages = 0
    with TableWriter(warehouse.raw_path(entity_set), schema) as writer:
        for page in client.iter_pages(entity_set, select=select, annotations=ANNOTATIONS):
            writer.write_rows({column.name: row.get(column.key) for column in columns} for row in page.rows)
            pages += 1
            log.info("extract %s: page %d, %d rows so far", entity_set, pages, writer.rows_written)
        rows = writer.rows_written
    return ExtractResult(entity_set, rows, len(columns), pages, time.monotonic() - started)
