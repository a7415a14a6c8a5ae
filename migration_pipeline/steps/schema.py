"""Schema discovery: which tables, columns, choices and relationships the source environment has.

The migration reads the standard tables of `STANDARD_TABLES` plus every custom table
(`IsCustomEntity`, N:N intersects included), so it asks Dataverse's metadata rather than
assuming a stock org: customised orgs add columns to standard tables and tables of their own.
What it finds is stored as three raw tables that the rest of the pipeline reads without calling
Dynamics again:

- `raw.schema_entities`: one row per table in scope, with `readable` false where this identity
  is refused the data (the extract skips those, the audit says so);
- `raw.schema_attributes`: every column of those tables (derived helper columns such as
  `owneridname`, which are a lookup's formatted value rather than columns of their own, left
  out), custom ones flagged, with lengths, formats, lookup targets and choice labels;
- `raw.schema_relationships`: the 1:N relationships whose lookup lives on a table in scope and
  the N:N relationships that touch one.

Requests stay few: one for all table definitions, two for all relationships, and per table one
for its columns, one per column type with type-specific properties (only the types it has), the
client's option-set reads, and a one-row probe of whether the data may be read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from migration_pipeline.dynamics.client import DataverseClient
from migration_pipeline.dynamics.models import (
    AttributeDefinition,
    AttributeTypeDetails,
    EntityDefinition,
    OptionMetadata,
    RelationshipDefinition,
)
from migration_pipeline.errors import MigrationError, PermissionDenied
from migration_pipeline.steps.objects import STANDARD_TABLES
from migration_pipeline.warehouse.catalog import Warehouse
from migration_pipeline.warehouse.parquet import write_frame

log = logging.getLogger(__name__)

ENTITIES_TABLE = "schema_entities"
ATTRIBUTES_TABLE = "schema_attributes"
RELATIONSHIPS_TABLE = "schema_relationships"

ONE_TO_MANY = "OneToManyRelationship"
MANY_TO_MANY = "ManyToManyRelationship"

# Attribute types whose value travels as `_<name>_value` on the wire.
LOOKUP_TYPES = frozenset({"Lookup", "Customer", "Owner"})

# Type-specific properties, per cast segment, and which attribute types each cast covers.
TYPE_DETAILS: dict[str, tuple[str, frozenset[str]]] = {
    "StringAttributeMetadata": ("LogicalName,MaxLength,Format", frozenset({"String"})),
    "MemoAttributeMetadata": ("LogicalName,MaxLength,Format", frozenset({"Memo"})),
    "IntegerAttributeMetadata": ("LogicalName,Format", frozenset({"Integer"})),
    "DateTimeAttributeMetadata": ("LogicalName,Format", frozenset({"DateTime"})),
    "LookupAttributeMetadata": ("LogicalName,Targets", frozenset({"Lookup", "Customer", "Owner", "PartyList"})),
}
CHOICE_TYPES = frozenset({"Picklist", "MultiSelectPicklist", "State", "Status"})

# Fixed Parquet schemas, so an all-null column keeps its type and the extractor can rely on them.
ENTITY_SCHEMA = pa.schema(
    [
        ("logical_name", pa.string()),
        ("entity_set_name", pa.string()),
        ("display_name", pa.string()),
        ("description", pa.string()),
        ("is_custom_entity", pa.bool_()),
        ("is_intersect", pa.bool_()),
        ("is_activity", pa.bool_()),
        ("change_tracking_enabled", pa.bool_()),
        ("primary_id_attribute", pa.string()),
        ("primary_name_attribute", pa.string()),
        ("readable", pa.bool_()),
    ]
)
ATTRIBUTE_SCHEMA = pa.schema(
    [
        ("entity", pa.string()),
        ("logical_name", pa.string()),
        ("column", pa.string()),
        ("attribute_type", pa.string()),
        ("display_name", pa.string()),
        ("description", pa.string()),
        ("format", pa.string()),
        ("max_length", pa.int64()),
        ("is_custom_attribute", pa.bool_()),
        ("is_primary_id", pa.bool_()),
        ("is_primary_name", pa.bool_()),
        ("required_level", pa.string()),
        ("targets", pa.string()),
        ("options", pa.string()),
        ("is_valid_for_read", pa.bool_()),
    ]
)
RELATIONSHIP_SCHEMA = pa.schema(
    [
        ("schema_name", pa.string()),
        ("relationship_type", pa.string()),
        ("referenced_entity", pa.string()),
        ("referenced_attribute", pa.string()),
        ("referencing_entity", pa.string()),
        ("referencing_attribute", pa.string()),
        ("entity1", pa.string()),
        ("entity2", pa.string()),
        ("intersect_entity", pa.string()),
        ("is_custom", pa.bool_()),
    ]
)


@dataclass
class Schema:
    """The three schema tables, as DataFrames with the columns of the Parquet schemas above."""

    entities: pd.DataFrame
    attributes: pd.DataFrame
    relationships: pd.DataFrame


# --- discovery (calls Dataverse) --------------------------------------------------------------


def discover_schema(client: DataverseClient) -> Schema:
    """Read the metadata of every table in scope, its columns and the relationships that touch it."""
    in_scope = tables_in_scope(client.entity_definitions())
    log.info("schema: %d tables in scope (%d custom)", len(in_scope), sum(e.is_custom_entity for e in in_scope))
    entity_rows: list[dict[str, object]] = []
    attribute_rows: list[dict[str, object]] = []
    for number, entity in enumerate(in_scope, start=1):
        attributes = client.attributes(entity.logical_name)
        types = {attribute.attribute_type for attribute in attributes}
        details = type_details(client, entity.logical_name, types)
        options = client.choice_options(entity.logical_name) if types & CHOICE_TYPES else {}
        readable = is_readable(client, entity)
        entity_rows.append(entity_row(entity, readable))
        attribute_rows += attribute_rows_for(entity.logical_name, attributes, details, options)
        log.info("schema %d/%d: %s, %d columns%s", number, len(in_scope), entity.logical_name, len(attributes),
                 "" if readable else ", data not readable by this identity")
    names = {entity.logical_name for entity in in_scope}
    relationship_rows = [relationship_row(r) for r in client.relationships() if touches(r, names)]
    return Schema(
        entities=frame(entity_rows, ENTITY_SCHEMA),
        attributes=frame(attribute_rows, ATTRIBUTE_SCHEMA),
        relationships=frame(relationship_rows, RELATIONSHIP_SCHEMA),
    )


def type_details(client: DataverseClient, logical_name: str, types: Iterable[str | None]) -> dict[str, AttributeTypeDetails]:
    """Lengths, formats and lookup targets of one table's columns: one request per cast its column types need."""
    present = set(types)
    details: dict[str, AttributeTypeDetails] = {}
    for cast, (select, covered) in TYPE_DETAILS.items():
        if not present & covered:
            continue
        body = client.get(f"EntityDefinitions(LogicalName='{logical_name}')/Attributes/Microsoft.Dynamics.CRM.{cast}", {"$select": select})
        for item in body["value"]:
            detail = AttributeTypeDetails.model_validate(item)
            details[detail.logical_name] = detail
    return details


def is_readable(client: DataverseClient, entity: EntityDefinition) -> bool:
    """Whether this identity may read the table's rows: a one-row probe, false on 403.

    Metadata is readable by everyone, so the privilege only shows on the data. A table with no
    entity set (some internal ones) cannot be read through the Web API at all.
    """
    if not entity.entity_set_name:
        return False
    try:
        client.get(entity.entity_set_name, {"$select": entity.primary_id_attribute, "$top": "1"})
    except PermissionDenied:
        return False
    return True


# --- pure shaping ------------------------------------------------------------------------------


def tables_in_scope(definitions: Sequence[EntityDefinition]) -> list[EntityDefinition]:
    """The standard tables of `STANDARD_TABLES` (in that order) that exist, then every custom table by name."""
    by_name = {definition.logical_name: definition for definition in definitions}
    standard = [by_name[name] for name, _ in STANDARD_TABLES if name in by_name]
    custom = sorted((d for d in definitions if d.is_custom_entity), key=lambda d: d.logical_name)
    return standard + [d for d in custom if d not in standard]


def entity_row(entity: EntityDefinition, readable: bool) -> dict[str, object]:
    return {
        "logical_name": entity.logical_name,
        "entity_set_name": entity.entity_set_name,
        "display_name": entity.display_name.text if entity.display_name else None,
        "description": entity.description.text if entity.description else None,
        "is_custom_entity": entity.is_custom_entity,
        "is_intersect": entity.is_intersect,
        "is_activity": entity.is_activity,
        "change_tracking_enabled": entity.change_tracking_enabled,
        "primary_id_attribute": entity.primary_id_attribute,
        "primary_name_attribute": entity.primary_name_attribute,
        "readable": readable,
    }


def attribute_type(attribute: AttributeDefinition) -> str | None:
    """The column's type: `AttributeTypeName` without its `Type` suffix, else `AttributeType`.

    The type name is the precise one: a multi-select choice is `AttributeType` "Virtual" in a
    real org but `MultiSelectPicklistType` by name.
    """
    if attribute.attribute_type_name is not None and attribute.attribute_type_name.value.endswith("Type"):
        return attribute.attribute_type_name.value.removesuffix("Type")
    return attribute.attribute_type


def attribute_rows_for(
    entity: str,
    attributes: Sequence[AttributeDefinition],
    details: Mapping[str, AttributeTypeDetails],
    options: Mapping[str, Sequence[OptionMetadata]],
) -> list[dict[str, object]]:
    """One row per column of `entity` (helper columns with `AttributeOf` left out), sorted by name."""
    rows: list[dict[str, object]] = []
    for attribute in sorted(attributes, key=lambda a: a.logical_name):
        if attribute.attribute_of:
            continue
        kind = attribute_type(attribute)
        detail = details.get(attribute.logical_name)
        choices = options.get(attribute.logical_name)
        rows.append(
            {
                "entity": entity,
                "logical_name": attribute.logical_name,
                "column": f"_{attribute.logical_name}_value" if kind in LOOKUP_TYPES else attribute.logical_name,
                "attribute_type": kind,
                "display_name": attribute.display_name.text if attribute.display_name else None,
                "description": attribute.description.text if attribute.description else None,
                "format": detail.format if detail else None,
                "max_length": detail.max_length if detail else None,
                "is_custom_attribute": attribute.is_custom_attribute,
                "is_primary_id": attribute.is_primary_id,
                "is_primary_name": attribute.is_primary_name,
                "required_level": attribute.required_level.value if attribute.required_level else None,
                "targets": "|".join(detail.targets) if detail and detail.targets else None,
                "options": None if choices is None else json.dumps([{"value": o.value, "label": o.text} for o in choices]),
                "is_valid_for_read": attribute.is_valid_for_read,
            }
        )
    return rows


def touches(relationship: RelationshipDefinition, names: set[str]) -> bool:
    """A 1:N whose lookup column lives on a table in scope, or an N:N with either side in scope."""
    if relationship.relationship_type == MANY_TO_MANY:
        return relationship.entity1_logical_name in names or relationship.entity2_logical_name in names
    return relationship.referencing_entity in names


def relationship_row(relationship: RelationshipDefinition) -> dict[str, object]:
    return {
        "schema_name": relationship.schema_name,
        "relationship_type": relationship.relationship_type,
        "referenced_entity": relationship.referenced_entity,
        "referenced_attribute": relationship.referenced_attribute,
        "referencing_entity": relationship.referencing_entity,
        "referencing_attribute": relationship.referencing_attribute,
        "entity1": relationship.entity1_logical_name,
        "entity2": relationship.entity2_logical_name,
        "intersect_entity": relationship.intersect_entity_name,
        "is_custom": relationship.is_custom_relationship,
    }


def frame(rows: list[dict[str, object]], schema: pa.Schema) -> pd.DataFrame:
    """Rows as a DataFrame typed by `schema` (nullable integers and booleans stay what they are)."""
    table = pa.Table.from_pylist(rows, schema=schema)
    return table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}.get)


# --- storage ------------------------------------------------------------------------------------


def write_schema(warehouse: Warehouse, schema: Schema) -> None:
    """Store the three tables as `raw/schema_*` (DuckDB views `raw.schema_*`), each replaced whole."""
    write_frame(warehouse.raw_path(ENTITIES_TABLE), schema.entities, ENTITY_SCHEMA)
    write_frame(warehouse.raw_path(ATTRIBUTES_TABLE), schema.attributes, ATTRIBUTE_SCHEMA)
    write_frame(warehouse.raw_path(RELATIONSHIPS_TABLE), schema.relationships, RELATIONSHIP_SCHEMA)


def read_schema(warehouse: Warehouse) -> Schema:
    """The stored schema; an actionable error if discovery has not run yet."""
    return Schema(
        entities=_read(warehouse, ENTITIES_TABLE),
        attributes=_read(warehouse, ATTRIBUTES_TABLE),
        relationships=_read(warehouse, RELATIONSHIPS_TABLE),
    )


def _read(warehouse: Warehouse, name: str) -> pd.DataFrame:
    try:
        return warehouse.read_raw(name)
    except FileNotFoundError:
        raise MigrationError(
            f"The source schema has not been discovered yet (no raw.{name} under {warehouse.home}).",
            hint="Run `migrate audit`, or materialize the asset dynamics/schema, first.",
        ) from None
