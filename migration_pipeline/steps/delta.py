"""Delta pickup: what changed in Dynamics since the last extract -> merged into the raw tables, then loaded in place.

Per extracted table, the cheapest way Dataverse offers to know what changed:

- a table that tracks changes is read from the delta link its extract (or the last pickup) kept
  in `raw/<entity_set>/_cursor.json`: changed rows in full, deletions as `$deletedEntity`;
- any other table is read with a `modifiedon` watermark less an overlap (clocks and in-flight
  transactions), and its deletions found by comparing primary keys (one request per 5000 rows);
- an expired delta token (`ChangeTrackingExpired`) falls back to a full re-read of that table,
  compared with the previous version, instead of failing.

Changed rows replace their rows (by primary id) in the raw Parquet table, deleted ids are
dropped, and the new version is published atomically with its advanced cursor attached (a
crash leaves the previous table and cursor, so the next pickup reads the same changes again).

What the load must still do is kept in `delta/pending.json` under MIGRATION_HOME (per load step,
the source ids changed and deleted in the tables its records come from: `DELTA_SOURCES`), written
before the table is published and cleared only after Pipedrive holds the change, so a crash
anywhere loses nothing. `apply_pending`, called by every load step, brings the step's migrated
records in line with what their staged rows now make (every field, in place) and applies the
delete rule; new records are created by the load itself.

**Delete rule**: a record deleted in Dynamics is deleted in Pipedrive only if the migration
created it; a record the account held before the migration (linked by `steps/existing.py`,
`idmap.existing`) is never deleted. Either way its source id leaves the ID map. Every delete
is journaled (operation `delete`, with the record as it was as before-image).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from migration_pipeline.dynamics.client import DataverseClient
from migration_pipeline.errors import ApiError
from migration_pipeline.pipedrive.client import PipedriveClient
from migration_pipeline.steps.existing import existing_ids
from migration_pipeline.steps.objects import FIELD_OBJECTS
from migration_pipeline.steps.provision import payload_fields
from migration_pipeline.steps.targets import DEAL_PRODUCTS, TARGETS, Body, Record, v2_object
from migration_pipeline.steps.verify import VERIFIERS, expected_bodies, norms_of
from migration_pipeline.validation.diff import differing
from migration_pipeline.dynamics.errors import ChangeTrackingExpired
from migration_pipeline.steps.extract import (
    ANNOTATIONS,
    CURSOR_FILE,
    Column,
    TableRef,
    extract_table,
    raw_columns,
    read_cursor,
    scope_tables,
)
from migration_pipeline.warehouse.catalog import Warehouse
from migration_pipeline.warehouse.journal import Journal, request_digest, utc_now
from migration_pipeline.warehouse.parquet import TableWriter

log = logging.getLogger(__name__)

OVERLAP = timedelta(minutes=5)
PENDING_FILE = Path("delta") / "pending.json"
CREATE_ONLY = {"add_time"}  # set when a record is created; Pipedrive refuses them in an update
VERSION_COLUMNS = ("versionnumber", "modifiedon")  # what tells a changed row from an unchanged one
# The Dynamics tables each load step's records are made from: a change in one reaches the step's records.
DELTA_SOURCES: dict[str, tuple[str, ...]] = {
    "organizations": ("accounts", "leads"),  # a lead's company and person are made from the lead
    "organizations_relationships": ("accounts",),  # an account's parent is its relationship
    "persons": ("contacts", "leads"),
    "products": ("products",),
    "deals": ("opportunities", "opportunityproducts"),  # a deal with products is worth the sum of its lines
    "deal_products": ("opportunityproducts",),
    "leads": ("leads",),
    "activities": ("activitypointers", "phonecalls", "emails", "tasks", "appointments", "activityparties"),
    "notes": ("annotations",),
    "files": ("annotations",),
}


@dataclass
class DeltaResult:
    """One table's pickup: how it was read (`delta`, `watermark`, `full` after an expired token), what changed, the new cursor."""

    entity_set: str
    mode: str
    changed: int
    deleted: int
    cursor: str | None
    seconds: float = 0.0


# --- pending changes (what the load still has to apply) -----------------------------------------


def pending_path(warehouse: Warehouse) -> Path:
    return warehouse.home / PENDING_FILE


def read_pending(warehouse: Warehouse) -> dict[str, dict[str, list[str]]]:
    """load step -> {"changed": [...], "deleted": [...]}: the source ids whose change it still has to apply in Pipedrive."""
    path = pending_path(warehouse)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(partial, path)


def affected_steps(entity_set: str) -> tuple[str, ...]:
    """The load steps whose records a change in `entity_set` can alter. A table no step names (a custom
    entity, flattened into custom fields; a reference table) can alter any object with custom fields."""
    steps = tuple(name for name, sets in DELTA_SOURCES.items() if entity_set in sets)
    return steps or tuple(item.name for item in FIELD_OBJECTS)


def add_pending(warehouse: Warehouse, entity_set: str, changed: Iterable[str], deleted: Iterable[str]) -> None:
    """Note a pickup's changes of one table for every load step they reach (each clears its own once applied)."""
    pending = read_pending(warehouse)
    deleted = {str(i).lower() for i in deleted}
    changed = {str(i).lower() for i in changed}
    for step in affected_steps(entity_set):
        entry = pending.setdefault(step, {"changed": [], "deleted": []})
        entry["changed"] = sorted((set(entry["changed"]) | changed) - deleted)
        entry["deleted"] = sorted(set(entry["deleted"]) | deleted)
    _write_json(pending_path(warehouse), pending)


def clear_pending(warehouse: Warehouse, step: str, changed: Collection[str], deleted: Collection[str]) -> None:
    """Forget what `step` has applied (and only that: a pickup may have added more meanwhile)."""
    pending = read_pending(warehouse)
    entry = pending.get(step)
    if entry is None:
        return
    entry["changed"] = [i for i in entry["changed"] if i not in changed]
    entry["deleted"] = [i for i in entry["deleted"] if i not in deleted]
    if not entry["changed"] and not entry["deleted"]:
        del pending[step]
    _write_json(pending_path(warehouse), pending)


# --- the pickup ----------------------------------------------------------------------------------


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def watermark_of(cursor: dict[str, Any]) -> str:
    """Where a watermark read starts: the last pickup's watermark, else the time of the extract."""
    return str(cursor.get("watermark") or cursor["extracted_at"])


def _rows_table(rows: Sequence[dict[str, Any]], columns: list[Column], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pydict({c.name: [row.get(c.key) for row in rows] for c in columns}, schema=schema)


def _conformed(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with exactly `schema`'s columns (a column new since the extract is all null)."""
    arrays = [table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(len(table), f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _versions(table: pa.Table, key: str) -> dict[str, str]:
    """primary id -> what identifies its version (versionnumber, else modifiedon)."""
    column = next((c for c in VERSION_COLUMNS if c in table.column_names), None)
    ids = [str(v).lower() for v in table.column(key).to_pylist()]
    if column is None:  # no version column (an N:N intersect, currencies): the row's content is its version
        versions = [json.dumps(row, sort_keys=True, default=str) for row in table.to_pylist()]
    else:
        versions = table.column(column).to_pylist()
    return {i: str(v) for i, v in zip(ids, versions, strict=True)}


def pickup_table(client: DataverseClient, warehouse: Warehouse, table: TableRef, *, since: str | None = None,
                 overlap: timedelta = OVERLAP) -> DeltaResult:
    """Merge what changed in one extracted table into its raw Parquet table, then advance its cursor."""
    started = time.monotonic()
    directory = warehouse.raw_path(table.entity_set)
    cursor = read_cursor(warehouse, table.entity_set) or {}
    columns = raw_columns(table.logical_name, client.attributes(table.logical_name))
    schema = pa.schema([(c.name, c.type) for c in columns])
    key = columns[0].name  # the primary id comes first
    old = _conformed(pq.read_table(directory), schema) if directory.exists() else schema.empty_table()
    old_versions = _versions(old, key)
    select = [c.key for c in columns if "@" not in c.key]

    if cursor.get("delta_link") and since is None:
        try:
            changed_rows: list[dict[str, Any]] = []
            deleted: list[str] = []
            link = cursor["delta_link"]
            for page in client.follow_delta(cursor["delta_link"], annotations=ANNOTATIONS):
                changed_rows += page.changed_rows
                deleted += page.deleted_ids
                link = page.delta_link or link
        except ChangeTrackingExpired:
            log.warning("delta %s: the change-tracking token expired; re-reading the whole table", table.entity_set)
            return _full_reread(client, warehouse, table, old_versions, started)
        mode, new_cursor = "delta", {"delta_link": link, "watermark": None}
    elif "modifiedon" not in schema.names:  # no watermark to read from: compare the whole table
        return _full_reread(client, warehouse, table, old_versions, started)
    elif cursor or since is not None:
        read_at = datetime.now(UTC)
        start = _parse(since) if since is not None else _parse(watermark_of(cursor)) - overlap
        changed_rows = list(client.iter_rows(table.entity_set, select=select, annotations=ANNOTATIONS,
                                             filter=f"modifiedon ge {_stamp(start)}"))
        present = {str(row[key]).lower() for page in client.iter_pages(table.entity_set, select=[key]) for row in page.rows}
        deleted = sorted(set(old_versions) - present)
        mode, new_cursor = "watermark", {"watermark": _stamp(read_at), "delta_link": cursor.get("delta_link")}
    else:  # never extracted: a full read is the pickup
        return _full_reread(client, warehouse, table, old_versions, started)

    fresh = _rows_table(changed_rows, columns, schema)
    fresh_versions = _versions(fresh, key)
    # Rows read again in a watermark's overlap, unchanged, are not changes.
    changed = {i for i, v in fresh_versions.items() if old_versions.get(i) != v}
    deleted_set = {str(i).lower() for i in deleted} & set(old_versions) - set(fresh_versions)
    if changed or deleted_set:
        add_pending(warehouse, table.entity_set, changed, deleted_set)  # before the table: a crash loses nothing
    gone = pa.array(sorted(changed | deleted_set), pa.string())
    merged = pa.concat_tables([
        old.filter(pc.invert(pc.is_in(pc.utf8_lower(old.column(key)), value_set=gone))),
        fresh.filter(pc.is_in(pc.utf8_lower(fresh.column(key)), value_set=pa.array(sorted(changed), pa.string()))),
    ])
    record = {**cursor, **new_cursor, "rows": merged.num_rows, "picked_up_at": utc_now()}
    if not changed and not deleted_set:  # nothing to write: the table and its position stay as they are
        record = cursor
    else:
        with TableWriter(directory, schema) as writer:
            writer.write_table(merged)
            writer.attach(CURSOR_FILE, json.dumps(record, indent=2))
    log.info("delta %s (%s): %d changed, %d deleted", table.entity_set, mode, len(changed), len(deleted_set))
    return DeltaResult(table.entity_set, mode, len(changed), len(deleted_set), record.get("delta_link") or record.get("watermark"),
                       time.monotonic() - started)


def _full_reread(client: DataverseClient, warehouse: Warehouse, table: TableRef, old_versions: dict[str, str],
                 started: float) -> DeltaResult:
    """Re-extract the whole table and compare it with the previous version: what differs is the change."""
    # Read into a scratch copy first, so the change list is known (and pending) before the table is published.
    scratch = Warehouse(warehouse.home / "delta" / "scratch")
    result = extract_table(client, scratch, table)
    fresh = pq.read_table(scratch.raw_path(table.entity_set))
    key = fresh.column_names[0]
    fresh_versions = _versions(fresh, key)
    changed = {i for i, v in fresh_versions.items() if old_versions.get(i) != v}
    deleted = set(old_versions) - set(fresh_versions)
    if changed or deleted:
        add_pending(warehouse, table.entity_set, changed, deleted)
    directory = warehouse.raw_path(table.entity_set)
    cursor = json.loads((scratch.raw_path(table.entity_set) / CURSOR_FILE).read_text(encoding="utf-8"))
    if not cursor.get("delta_link"):
        cursor["watermark"] = cursor["extracted_at"]
    with TableWriter(directory, fresh.schema) as writer:
        writer.write_table(fresh)
        writer.attach(CURSOR_FILE, json.dumps(cursor, indent=2))
    shutil.rmtree(scratch.raw_path(table.entity_set), ignore_errors=True)
    return DeltaResult(table.entity_set, "full", len(changed), len(deleted), result.delta_link or cursor.get("watermark"),
                       time.monotonic() - started)


def extracted_tables(warehouse: Warehouse) -> list[TableRef]:
    """The tables in scope that have been extracted (a delta starts from an extract)."""
    return [table for table in scope_tables(warehouse.home) if read_cursor(warehouse, table.entity_set) is not None]


def pickup_changes(client: DataverseClient, warehouse: Warehouse, tables: Sequence[TableRef] | None = None, *,
                   since: str | None = None, overlap: timedelta = OVERLAP) -> list[DeltaResult]:
    """One pickup over every extracted table (or `tables`); `since` forces a watermark read from that time."""
    return [pickup_table(client, warehouse, table, since=since, overlap=overlap) for table in tables or extracted_tables(warehouse)]


# --- applying the changes in Pipedrive (called by the load step of every object) ----------------


async def apply_pending(client: PipedriveClient, warehouse: Warehouse, name: str, run_id: str) -> tuple[int, int]:
    """Bring the records of one load step (`name`) in line with what a pickup found changed, and apply the
    delete rule to what it found deleted; returns (updated, deleted in Pipedrive).

    When any table `name`'s records come from has changed, every record of `name` the migration
    loaded is compared with what its staged row now makes (what `migrate verify` compares, so a
    clean diff follows), one list read per object: a change in a related table (an activity's
    parties, a deal's product lines, an account's parent) reaches the records it alters. A
    record that differs is updated in place with the fields that differ (PATCH, or PUT where v1
    has only that), journaled with their before-image; a file (whose content, name or parent
    cannot be edited) and a deal product moved to another deal are deleted and created again by
    the load step that follows. During cutover Dynamics is the source of truth: a value edited by
    hand in Pipedrive on a migrated record that differs is set back. Records held before the
    migration (`idmap.existing`) are never written to.

    Deleted: a record whose Dynamics row was deleted, or that no row makes any more without being
    rejected or merged (an account whose parent was cleared: its relationship; a deleted lead's
    company), is deleted if the migration created it, unlinked if it was held before. A record missing
    in Pipedrive whose row changed is forgotten, so the load creates it again.
    """
    from migration_pipeline.steps.load import _update_where_different  # load calls this: imported late

    pending = read_pending(warehouse).get(name)
    if not pending:
        return 0, 0
    if not warehouse.staged_path(name).exists():  # not part of this migration: nothing to apply
        clear_pending(warehouse, name, pending["changed"], pending["deleted"])
        return 0, 0
    spec = VERIFIERS[name]
    fields = payload_fields(warehouse, spec.fields_object)
    idmap = warehouse.idmap(name)
    untouchable = existing_ids(warehouse, name)
    bodies = expected_bodies(warehouse, spec, fields, idmap)
    norms = norms_of(spec, fields)
    held: dict[str, Record] = {}
    records: AsyncIterator[Record]
    if name == "deal_products":  # the lines of every migrated deal: a line moved or deleted is found too
        records = DEAL_PRODUCTS.read_back(client, fields, list(bodies.values()))
    else:  # what `migrate verify` reads (every custom field of a v2 record, archived deals and leads too)
        records = spec.read(client, fields, {idmap[source_id]: body for source_id, body in bodies.items()})
    async for record in records:
        held[str(record["id"])] = record
    changed, deleted = set(pending["changed"]), set(pending["deleted"])
    kept = _rejected_or_merged(warehouse, name)
    # Gone from Dynamics, or no longer made by any row (a lead's company once the lead is deleted).
    doomed = sorted(i for i in idmap if i in deleted or (i not in bodies and i not in kept))
    wanted: dict[str, Body] = {}
    recreate: list[str] = []
    forget: list[str] = []
    for source_id, body in bodies.items():
        if source_id in untouchable or source_id in doomed:
            continue
        record = held.get(idmap[source_id])
        if record is None:
            if source_id in changed and await _gone(client, name, idmap[source_id]):
                forget.append(source_id)  # deleted in Pipedrive meanwhile (or by a run that stopped): created again
            continue
        view = spec.view(body) if spec.view else body
        seen = spec.held(record, fields) if spec.held else record
        changes = {key: value for key, value in differing(view, seen, norms).items() if key not in CREATE_ONLY}
        if not changes:
            continue
        if name == "files" or (name == "deal_products" and "deal_id" in changes):
            recreate.append(source_id)
        else:
            wanted[source_id] = changes
    warehouse.forget_ids(name, forget)
    # Before-images in the form the body was sent in (a v1 lead's custom fields as v2 sends them), for a rollback.
    records = {idmap[i]: spec.held(held[idmap[i]], fields) if spec.held else held[idmap[i]] for i in wanted}
    updated = await _update_where_different(client, warehouse, name, _resource_of(name), idmap, wanted, run_id, records)
    removed, failed = await _delete(client, warehouse, name, idmap, held, untouchable, [*doomed, *recreate], run_id)
    deleted_here = len(set(removed) & set(doomed))
    warehouse.import_journal()
    refused = set(warehouse.query(
        "SELECT source_id FROM audit.operations WHERE run_id = ? AND object = ? AND operation = 'update' AND outcome = 'failed'",
        [run_id, name])["source_id"])
    # What Pipedrive refused stays pending, for the next pickup to try again.
    clear_pending(warehouse, name, changed - refused - set(failed), deleted - set(failed))
    if updated or removed:
        log.info("delta %s: %d updated in place, %d deleted, %d to create again", name, updated, deleted_here, len(removed) - deleted_here)
    return updated, deleted_here


def _resource_of(name: str) -> str | Callable[[Record], str]:
    if name == "deal_products":
        return lambda record: f"deals/{record['deal_id']}/products"
    return TARGETS[name].resource if name in TARGETS else "files" if name == "files" else v2_object(name).resource


def _rejected_or_merged(warehouse: Warehouse, name: str) -> set[str]:
    """Source ids of `name` now rejected whole or merged into another record: Pipedrive keeps what it holds of them."""
    return set(warehouse.query(
        "SELECT source_id FROM staged.rejects WHERE object = ? AND field = '*' UNION SELECT source_id FROM staged.merged WHERE object = ?",
        [name, name])["source_id"].astype(str))


async def _get(client: PipedriveClient, name: str, record_id: str) -> Record | None:
    """A record by id, None when Pipedrive no longer holds it (a list read may not cover it: relationships)."""
    try:
        record = await client.get(str(_resource_of(name)), record_id)
    except ApiError as error:
        if error.status_code in (404, 410):
            return None
        raise
    return None if not record or record.get("is_deleted") or record.get("active_flag") in (False, "false") else record


async def _gone(client: PipedriveClient, name: str, record_id: str) -> bool:
    # The bulk read of deal products covers every migrated deal's lines: not there is gone.
    return name == "deal_products" or await _get(client, name, record_id) is None


async def _delete(client: PipedriveClient, warehouse: Warehouse, name: str, idmap: dict[str, str], held: dict[str, Record],
                  untouchable: Collection[str], source_ids: Sequence[str], run_id: str) -> tuple[list[str], list[str]]:
    """Delete what the migration created of `source_ids` (journaled, the record as its before-image) and forget
    them all; records held before the migration are only forgotten. Returns the source ids deleted, and those that failed."""
    removed: list[str] = []
    failed: list[str] = []
    resource = _resource_of(name)
    with Journal(warehouse.journal_dir, run_id) as journal:
        for source_id in source_ids:
            record_id = idmap[source_id]
            record = held.get(record_id)
            if record is None and source_id not in untouchable and name != "deal_products":
                record = await _get(client, name, record_id)  # a list read need not cover it (relationships)
            if source_id not in untouchable and record is not None:
                path = resource(record) if callable(resource) else resource
                intent = journal.intent("delete", name, source_id, request_digest("DELETE", path, {"id": record_id}),
                                        before_image=record)
                try:
                    await client.delete(path, record_id)
                except ApiError as error:
                    if error.status_code not in (404, 410):  # gone already: as good as deleted
                        journal.outcome(intent, "failed", pipedrive_id=record_id, detail=error.message)
                        failed.append(source_id)
                        continue
                journal.outcome(intent, "ok", pipedrive_id=record_id)
                removed.append(source_id)
            warehouse.forget_ids(name, [source_id])  # at once: a crash after the delete must not leave it mapped
    return removed, failed


# --- the cheap question the sensor asks -----------------------------------------------------------


def positions(warehouse: Warehouse) -> dict[str, str]:
    """Per extracted table, where the next pickup starts: its delta link, else its watermark."""
    out = {}
    for table in extracted_tables(warehouse):
        cursor = read_cursor(warehouse, table.entity_set) or {}
        if cursor.get("delta_link") and not cursor.get("watermark"):
            out[table.entity_set] = str(cursor["delta_link"])
        else:
            out[table.entity_set] = watermark_of(cursor)
    return out


def changed_since(client: DataverseClient, warehouse: Warehouse, where: dict[str, str]) -> list[str]:
    """The entity sets with changes after their position in `where`: one small read per table (a page of one row).

    A table with neither change tracking nor `modifiedon` (an N:N intersect, currencies) is asked its row count;
    an edit that keeps the count is found by the next pickup, which compares such tables whole.
    """
    tables = {table.entity_set: table for table in extracted_tables(warehouse)}
    changed = []
    for entity_set, position in where.items():
        table = tables.get(entity_set)
        if table is None:
            continue
        try:
            if position.startswith("http"):
                page = next(client.follow_delta(position, page_size=1), None)
                found = page is not None and bool(page.rows)
            else:
                columns = raw_columns(table.logical_name, client.attributes(table.logical_name))
                if "modifiedon" not in {c.name for c in columns}:  # no watermark: a changed row count is the cheap sign
                    if client.count(entity_set) != (read_cursor(warehouse, entity_set) or {}).get("rows"):
                        changed.append(entity_set)
                    continue
                key = columns[0].key
                page = next(client.iter_pages(entity_set, select=[key], filter=f"modifiedon gt {_stamp(_parse(position))}", page_size=1), None)
                found = page is not None and bool(page.rows)
                # A deletion leaves no row to find by `modifiedon`: a row count that moved is its sign.
                found = found or client.count(entity_set) != (read_cursor(warehouse, entity_set) or {}).get("rows")
        except ChangeTrackingExpired:
            found = True  # the pickup re-reads the table
        if found:
            changed.append(entity_set)
    return changed
