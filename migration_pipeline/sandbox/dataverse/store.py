"""The simulator's tables: immutable snapshots, a database-wide version counter, a delete log.

Every mutation builds a new `TableSnapshot` under a lock and swaps it in, so a request that
started on the old snapshot finishes on consistent data (the server thread and a test thread
may act at once). Snapshots compute their indexes lazily and keep them: the sorted primary
keys (for keyset paging and single-row lookups), comparable columns (for `$filter` and
`$orderby`) and the id -> primary name map (for lookup formatted values).

`versionnumber` works like SQL Server's rowversion: one counter for the whole organization,
bumped by every create and update. Deletes are logged with the version they got, which is
what change tracking replays.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from migration_pipeline.sandbox.dataset import (
    LOOKUP_LOGICAL_NAME,
    LOOKUP_TYPES,
    AttributeDef,
    DataverseDataset,
    EntityDef,
    OrganizationSettings,
)
from migration_pipeline.sandbox.dataverse.errors import DataverseError, not_found, query_error
from migration_pipeline.sandbox.dataverse.evaluate import ColumnKind, comparable

_KIND_BY_TYPE: dict[str, ColumnKind] = {
    "Uniqueidentifier": "guid",
    "Lookup": "guid",
    "Customer": "guid",
    "Owner": "guid",
    "PartyList": "guid",
    "String": "string",
    "Memo": "string",
    "EntityName": "string",
    "MultiSelectPicklist": "string",
    "Integer": "int",
    "BigInt": "int",
    "Picklist": "int",
    "State": "int",
    "Status": "int",
    "Decimal": "decimal",
    "Double": "decimal",
    "Money": "decimal",
    "Boolean": "bool",
}


def utc_now_text() -> str:
    """A timestamp in the dataset's wire format."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def attribute_kind(attribute: AttributeDef) -> ColumnKind:
    if attribute.attribute_type == "DateTime":
        return "date" if attribute.format == "DateOnly" else "datetime"
    return _KIND_BY_TYPE[attribute.attribute_type]


def _dtype_kind(series: pd.Series) -> ColumnKind:
    if pd.api.types.is_bool_dtype(series.dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(series.dtype):
        return "int"
    if pd.api.types.is_float_dtype(series.dtype):
        return "decimal"
    return "string"


def column_kinds(entity: EntityDef, frame: pd.DataFrame) -> dict[str, ColumnKind]:
    """The queryable properties of a table: readable attributes plus any other wire column.

    Annotation columns (`..@Microsoft.Dynamics.CRM.lookuplogicalname`) are storage only.
    """
    kinds: dict[str, ColumnKind] = {}
    if entity.logical_name == "annotation":
        # Note bodies live in the dataset's lazy attachments, not in the frame.
        kinds["documentbody"] = "string"
    for attribute in entity.attributes:
        if attribute.is_valid_for_read:
            kinds[attribute.column] = attribute_kind(attribute)
    for column in frame.columns:
        if "@" not in column and column not in kinds:
            kinds[column] = _dtype_kind(frame[column])
    return kinds


def organization_table(settings: OrganizationSettings) -> tuple[EntityDef, pd.DataFrame]:
    """The one-row `organizations` table clients read settings from, when the dataset has none."""
    attributes = (
        AttributeDef("organizationid", "Uniqueidentifier", "Organization", is_primary_id=True, required_level="SystemRequired"),
        AttributeDef("name", "String", "Name", max_length=160, is_primary_name=True, required_level="SystemRequired"),
        AttributeDef("basecurrencyid", "Lookup", "Currency", targets=("transactioncurrency",)),
        AttributeDef("maxuploadfilesize", "Integer", "Max Upload File Size", min_value=0, max_value=131_072_000),
        AttributeDef("expirechangetrackingindays", "Integer", "Expire Change Tracking In Days", min_value=0, max_value=365),
        AttributeDef("versionnumber", "BigInt", "Version Number"),
    )
    entity = EntityDef(
        "organization", "organizations", "Organization", "Organizations", "organizationid", "name", attributes, 1019,
        change_tracking_enabled=False,
    )
    frame = pd.DataFrame(
        {
            "organizationid": pd.array([settings.organization_id.lower()], dtype="str"),
            "name": pd.array([settings.name], dtype="str"),
            "_basecurrencyid_value": pd.array([settings.base_currency_id.lower()], dtype="str"),
            "maxuploadfilesize": pd.array([settings.max_upload_file_size], dtype="Int64"),
            "expirechangetrackingindays": pd.array([settings.expire_change_tracking_in_days], dtype="Int64"),
            "versionnumber": pd.array([1], dtype="Int64"),
        }
    )
    return entity, frame


@dataclass
class TableSnapshot:
    """One version of one table. Never mutated after it is published, except lazy caches."""

    entity: EntityDef
    frame: pd.DataFrame
    kinds: dict[str, ColumnKind]
    _comparable: dict[str, pd.Series] = field(default_factory=dict)
    _pk_index: tuple[np.ndarray, np.ndarray] | None = None
    _names: pd.Series | None = None

    @property
    def primary_key(self) -> str:
        return self.entity.primary_id_attribute

    def comparable(self, column: str) -> pd.Series:
        cached = self._comparable.get(column)
        if cached is None:
            raw = self.frame[column] if column in self.frame.columns else pd.Series([None] * len(self.frame), dtype="object")
            cached = comparable(raw, self.kinds[column])
            self._comparable[column] = cached
        return cached

    def pk_index(self) -> tuple[np.ndarray, np.ndarray]:
        """(sorted primary keys, their row positions), for bisecting instead of scanning."""
        if self._pk_index is None:
            keys = self.frame[self.primary_key]
            order = keys.argsort(kind="stable").to_numpy()
            self._pk_index = (keys.to_numpy(dtype=object)[order], order)
        return self._pk_index

    def position(self, key: str) -> int | None:
        sorted_keys, order = self.pk_index()
        index = int(np.searchsorted(sorted_keys, key))
        if index < len(sorted_keys) and sorted_keys[index] == key:
            return int(order[index])
        return None

    def names(self) -> pd.Series:
        """id -> primary name, for the formatted value of lookups that point here."""
        if self._names is None:
            name_column = self.entity.primary_name_attribute
            values = self.frame[name_column] if name_column and name_column in self.frame.columns else pd.Series([None] * len(self.frame))
            self._names = pd.Series(values.to_numpy(dtype=object), index=self.frame[self.primary_key].to_numpy(dtype=object))
        return self._names

    def derive(self, frame: pd.DataFrame, changed: set[str] | None) -> TableSnapshot:
        """The next snapshot; an in-place update (`changed` columns) keeps the other indexes."""
        snapshot = TableSnapshot(self.entity, frame.reset_index(drop=True), self.kinds)
        if changed is not None:
            snapshot._comparable = {name: values for name, values in self._comparable.items() if name not in changed}
            snapshot._pk_index = self._pk_index
            if self.entity.primary_name_attribute not in changed:
                snapshot._names = self._names
        return snapshot


@dataclass(frozen=True)
class DeletedRow:
    id: str
    version: int
    at: datetime


class Store:
    """All tables of the simulated organization and the change log behind change tracking."""

    def __init__(self, dataset: DataverseDataset) -> None:
        self.dataset = dataset
        self.organization: OrganizationSettings = dataset.organization
        self.entities: dict[str, EntityDef] = dict(dataset.entities)
        self._lock = threading.RLock()
        self._tables: dict[str, TableSnapshot] = {}
        for name, frame in dataset.tables.items():
            entity = dataset.entity_by_set(name)
            # A shallow copy: copy-on-write keeps the caller's frames untouched by our edits.
            frame = frame.copy(deep=False).reset_index(drop=True)
            if "versionnumber" not in frame.columns:
                frame["versionnumber"] = pd.array(np.arange(1, len(frame) + 1), dtype="Int64")
            self._tables[name] = TableSnapshot(entity, frame, column_kinds(entity, frame))
        if "organization" not in self.entities:
            entity, frame = organization_table(dataset.organization)
            self.entities[entity.logical_name] = entity
            self._tables[entity.entity_set_name] = TableSnapshot(entity, frame, column_kinds(entity, frame))
        self._set_by_logical = {snapshot.entity.logical_name: name for name, snapshot in self._tables.items()}
        self.version = max((int(s.frame["versionnumber"].max()) for s in self._tables.values() if len(s.frame)), default=0)
        self.deleted: dict[str, list[DeletedRow]] = {name: [] for name in self._tables}
        # Delta tokens issued below this version fail as expired (`expire_change_tracking`).
        self.expired_below = 0

    # --- reading ---

    @property
    def entity_sets(self) -> list[str]:
        return list(self._tables)

    def has(self, entity_set: str) -> bool:
        return entity_set in self._tables

    def table(self, entity_set: str) -> TableSnapshot:
        return self._tables[entity_set]

    def table_for(self, logical_name: str) -> TableSnapshot | None:
        name = self._set_by_logical.get(logical_name)
        return self._tables[name] if name else None

    def counts(self) -> dict[str, int]:
        return {name: len(snapshot.frame) for name, snapshot in self._tables.items()}

    # --- writing (the /_sandbox controls) ---

    def create(self, entity_set: str, values: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            snapshot = self._known(entity_set)
            entity = snapshot.entity
            row = {column: None for column in snapshot.frame.columns}
            key = str(values.get(entity.primary_id_attribute) or uuid.uuid4()).lower()
            if snapshot.position(key) is not None:
                raise DataverseError(412, "0x80040237", f"A record with id {key} already exists.")
            row.update(self._checked(snapshot, values))
            now = utc_now_text()
            self.version += 1
            row.update({entity.primary_id_attribute: key, "versionnumber": self.version})
            for column in ("createdon", "modifiedon"):
                if column in row:
                    row[column] = values.get(column) or now
            self._fill_lookup_targets(snapshot, row)
            addition = pd.DataFrame([row], columns=snapshot.frame.columns).astype(snapshot.frame.dtypes.to_dict())
            frame = pd.concat([snapshot.frame, addition], ignore_index=True) if len(snapshot.frame) else addition
            self._tables[entity_set] = snapshot.derive(frame, None)
            return row

    def update(self, entity_set: str, key: str, values: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            snapshot = self._known(entity_set)
            position = self._position(snapshot, key)
            changes = self._checked(snapshot, values)
            changes.pop(snapshot.primary_key, None)
            self.version += 1
            changes["versionnumber"] = self.version
            if "modifiedon" in snapshot.frame.columns:
                changes["modifiedon"] = values.get("modifiedon") or utc_now_text()
            self._fill_lookup_targets(snapshot, changes)
            frame = snapshot.frame.copy(deep=False)
            for column, value in changes.items():
                series = frame[column].copy()
                series.iloc[position] = value
                frame[column] = series
            self._tables[entity_set] = snapshot.derive(frame, set(changes))
            return {column: plain(frame[column].iloc[position]) for column in frame.columns}

    def delete(self, entity_set: str, key: str) -> None:
        with self._lock:
            snapshot = self._known(entity_set)
            position = self._position(snapshot, key)
            frame = snapshot.frame.drop(index=position)
            self.version += 1
            self.deleted[entity_set].append(DeletedRow(key.lower(), self.version, datetime.now(UTC)))
            self._tables[entity_set] = snapshot.derive(frame, None)

    def expire_change_tracking(self) -> None:
        """Make every delta token issued so far fail as expired (a fresh full sync still works)."""
        with self._lock:
            self.version += 1
            self.expired_below = self.version

    def set_readable(self, entity_set: str, readable: bool) -> None:
        """Grant or revoke the application user's Read privilege on a table: reading its rows answers 403 while revoked."""
        with self._lock:
            snapshot = self._known(entity_set)
            entity = replace(snapshot.entity, readable=readable)
            self.entities[entity.logical_name] = entity
            self._tables[entity_set] = replace(snapshot, entity=entity)

    # --- helpers ---

    def _known(self, entity_set: str) -> TableSnapshot:
        if entity_set not in self._tables:
            raise not_found(f"Resource not found for the segment '{entity_set}'.")
        return self._tables[entity_set]

    def _position(self, snapshot: TableSnapshot, key: str) -> int:
        position = snapshot.position(key.lower())
        if position is None:
            raise not_found(f"{snapshot.entity.logical_name} With Id = {key} Does Not Exist")
        return position

    def _checked(self, snapshot: TableSnapshot, values: dict[str, Any]) -> dict[str, Any]:
        unknown = [name for name in values if name not in snapshot.frame.columns]
        if unknown:
            raise query_error(f"Could not find a property named '{unknown[0]}' on type 'Microsoft.Dynamics.CRM.{snapshot.entity.logical_name}'.")
        checked: dict[str, Any] = {}
        for name, value in values.items():
            kind = snapshot.kinds.get(name)
            checked[name] = value.lower() if kind == "guid" and isinstance(value, str) else value
        return checked

    def _fill_lookup_targets(self, snapshot: TableSnapshot, row: dict[str, Any]) -> None:
        """Derive `_x_value@...lookuplogicalname` for a polymorphic lookup set without it."""
        for attribute in snapshot.entity.attributes:
            if attribute.attribute_type not in LOOKUP_TYPES or attribute.column not in row:
                continue
            annotation = attribute.column + LOOKUP_LOGICAL_NAME
            if annotation not in snapshot.frame.columns or row.get(annotation):
                continue
            key = row[attribute.column]
            row[annotation] = None if key is None else self._target_of(attribute, key)

    def _target_of(self, attribute: AttributeDef, key: str) -> str:
        for target in attribute.targets:
            table = self.table_for(target)
            if table is not None and table.position(key) is not None:
                return target
        raise query_error(f"No {' or '.join(attribute.targets)} record has id {key} (for {attribute.logical_name}).")


def plain(value: object) -> object:
    """A pandas or numpy scalar as a JSON-ready Python value (missing values become None)."""
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value
